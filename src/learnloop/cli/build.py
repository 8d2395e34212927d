"""From the settings of a run to a Learner: the data, the model, the loss and the optimizer."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import UserError


def make_learner(args: argparse.Namespace, **kwargs: Any):
    """The Learner the flags describe: data, model, loss and metrics."""
    import torch

    from ..data import DataLoaders
    from ..learner import Learner
    from ..metrics import accuracy
    from ..nn import functional
    from ..optim import SGD, AdamW

    torch.manual_seed(args.seed)
    if args.dataset in ("digits", "mnist") or not Path(args.dataset).is_dir():
        dls = DataLoaders.from_dsets(*load_datasets(args), bs=args.bs, n_workers=args.workers, seed=args.seed)
    else:
        dls = image_folder_loaders(args)
    train_ds = dls.train.ds
    xb, _ = train_ds[0]
    n_classes = len(train_ds.vocab) if hasattr(train_ds, "vocab") else int(train_ds.y.max()) + 1
    model = make_model(args.arch, in_channels=xb.shape[0], n_classes=n_classes)
    smoothing = getattr(args, "label_smoothing", 0.0)
    loss_func = (lambda p, t: functional.cross_entropy(p, t, label_smoothing=smoothing)) if smoothing else functional.cross_entropy
    momentum, wd = getattr(args, "momentum", 0.0), getattr(args, "wd", 0.0)
    if getattr(args, "opt", "sgd") == "adamw":
        kwargs.setdefault("opt_func", partial(AdamW, wd=wd))
    elif momentum or wd:
        kwargs.setdefault("opt_func", partial(SGD, momentum=momentum, wd=wd, nesterov=getattr(args, "nesterov", False)))
    if getattr(args, "channels_last", False):
        from ..callbacks import ChannelsLast

        kwargs["cbs"] = [ChannelsLast(), *kwargs.get("cbs", [])]
    return Learner(model, dls, loss_func=loss_func, lr=args.lr, metrics=[accuracy], device=args.device, **kwargs)


def load_datasets(args: argparse.Namespace):
    """(train, valid) datasets for 'digits' or 'mnist'; an error naming the choices for anything else."""
    from ..data import datasets

    for flag in ("augment", "flip"):
        if getattr(args, flag) is not None and args.dataset in ("digits", "mnist"):
            raise UserError(f"--{'no-flip' if flag == 'flip' else flag} applies to image folders only, "
                            f"not to {args.dataset}; drop it.")
    if args.dataset == "digits":
        return datasets.digits(seed=args.seed)
    if args.dataset == "mnist":
        return datasets.mnist(args.data)
    if Path(args.dataset).is_file():
        raise UserError(f"{args.dataset!r} is a file: pass the image folder that holds train/ and val/ (ROOT in "
                        f"ROOT/train/<label>/*.jpg), or 'digits' or 'mnist'.")
    raise UserError(f"unknown dataset {args.dataset!r}: no such folder. Use 'digits', 'mnist', or the path of an image "
                    f"folder (ROOT/train/<label>/, ROOT/val/<label>/).")


def image_folder_loaders(args: argparse.Namespace):
    """DataLoaders for the image folder `args.dataset`: uint8 from the workers, augmented unless `--no-augment`."""
    from ..data import Augment
    from ..data.datasets import image_folder_dls

    augment = Augment(flip=args.flip) if args.augment else None
    return image_folder_dls(args.dataset, size=args.size, bs=args.bs, augment=augment, n_workers=args.workers,
                            seed=args.seed)


def make_model(arch: str, in_channels: int, n_classes: int):
    """A model by name: `simple_cnn` (learnloop's from-scratch CNN), `bn_cnn` (conv-BN-ReLU) or `image_cnn`
    (a wider, deeper conv-BN-ReLU with max pools, for colour photos)."""
    from .. import nn

    if arch == "simple_cnn":
        return nn.simple_cnn(in_channels=in_channels, n_classes=n_classes, widths=(16, 32, 64))
    if arch == "image_cnn":
        return nn.image_cnn(in_channels=in_channels, n_classes=n_classes)
    return nn.bn_cnn(in_channels=in_channels, n_classes=n_classes)
