"""From the settings of a run to a Learner: the data, the model, the loss and the optimizer."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ..errors import UserError
from .config import RunConfig, is_folder


def make_learner(config: RunConfig, start: dict[str, Any] | None = None, **kwargs: Any):
    """The Learner `config` describes: data, model, loss, optimizer and metrics (`kwargs` go to the Learner);
    `start`: the model file of the run `--from` names, whose architecture and body the model takes (`start.py`)."""
    import torch

    from ..data import DataLoaders
    from ..learner import Learner
    from ..metrics import accuracy
    from ..nn import functional
    from ..optim import SGD, AdamW

    torch.manual_seed(config.seed)
    if is_folder(config.dataset):
        dls = image_folder_loaders(config)
    else:
        dls = DataLoaders.from_dsets(*load_datasets(config), bs=config.bs, n_workers=config.workers, seed=config.seed)
    train_ds = dls.train.ds
    xb, _ = train_ds[0]
    n_classes = len(train_ds.vocab) if hasattr(train_ds, "vocab") else int(train_ds.y.max()) + 1
    if start is not None:
        from .start import model_from_run

        model = model_from_run(start, n_classes)
    else:
        model = make_model(config.arch, in_channels=xb.shape[0], n_classes=n_classes, pretrained=config.pretrained)
    loss_func = functional.cross_entropy
    if config.label_smoothing:
        loss_func = partial(functional.cross_entropy, label_smoothing=config.label_smoothing)
    if config.opt == "adamw":
        kwargs.setdefault("opt_func", partial(AdamW, wd=config.wd))
    elif config.momentum or config.wd:
        kwargs.setdefault("opt_func", partial(SGD, momentum=config.momentum, wd=config.wd, nesterov=config.nesterov))
    if config.channels_last:
        from ..callbacks import ChannelsLast

        kwargs["cbs"] = [ChannelsLast(), *kwargs.get("cbs", [])]
    return Learner(model, dls, loss_func=loss_func, lr=config.lr, metrics=[accuracy], device=config.device, **kwargs)


def load_datasets(config: RunConfig):
    """(train, valid) datasets for 'digits' or 'mnist'; an error naming the choices for anything else."""
    from ..data import datasets

    if config.dataset == "digits":
        return datasets.digits(seed=config.seed)
    if config.dataset == "mnist":
        return datasets.mnist(config.data)
    if Path(config.dataset).is_file():
        raise UserError(f"{config.dataset!r} is a file: pass the image folder that holds train/ and val/ (ROOT in "
                        f"ROOT/train/<label>/*.jpg), or 'digits' or 'mnist'.")
    raise UserError(f"unknown dataset {config.dataset!r}: no such folder. Use 'digits', 'mnist', or the path of an image "
                    f"folder (ROOT/train/<label>/, ROOT/val/<label>/).")


def image_folder_loaders(config: RunConfig):
    """DataLoaders for the image folder `config.dataset`: uint8 from the workers, augmented with `config.augment`."""
    from ..data import Augment
    from ..data.datasets import image_folder_dls

    augment = Augment(flip=config.flip) if config.augment else None
    return image_folder_dls(config.dataset, size=config.size, bs=config.bs, augment=augment, n_workers=config.workers,
                            seed=config.seed)


def make_model(arch: str, in_channels: int, n_classes: int, pretrained: bool = False):
    """A model by name: `simple_cnn` (learnloop's from-scratch CNN), `bn_cnn` (conv-BN-ReLU), `image_cnn` (a wider,
    deeper conv-BN-ReLU with max pools, for colour photos), else a torchvision/timm model (`nn.hub`), with their
    published weights when `pretrained`."""
    from .. import nn
    from .config import ARCHS

    if arch not in ARCHS:
        return nn.hub_model(arch, n_classes, in_channels, pretrained)
    if arch == "simple_cnn":
        return nn.simple_cnn(in_channels=in_channels, n_classes=n_classes, widths=(16, 32, 64))
    if arch == "image_cnn":
        return nn.image_cnn(in_channels=in_channels, n_classes=n_classes)
    return nn.bn_cnn(in_channels=in_channels, n_classes=n_classes)
