"""Predictions of a trained learner: class probabilities for one item or a whole test loader, through the
validation pipeline (`learn.dls.pipeline`), and the label of each."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .data.dataset import images_under
from .data.pipeline import READ_ERRORS, Pipeline, pipeline_of
from .errors import MissingFileError


def pipeline(learn: Any) -> Pipeline | None:
    """The learner's validation pipeline: recorded in its loaders (`load_learner`) or read from them."""
    return getattr(learn.dls, "pipeline", None) or pipeline_of(learn.dls)


def classes(learn: Any) -> list | None:
    """The label of each output (the data's vocab), or None: then labels are the indices."""
    vocab = getattr(learn.dls, "vocab", None)
    return None if vocab is None else list(vocab)


@torch.no_grad()
def probs(learn: Any, xb: Tensor) -> Tensor:
    """Softmax of the model's outputs for the batch `xb` (batch transforms already applied), in eval mode; the
    model's train/eval mode is left as it was."""
    model, was_training = learn.model, learn.model.training
    model.eval()
    try:
        return model(xb.to(learn.device)).float().softmax(dim=-1).cpu()
    finally:
        model.train(was_training)


def predict(learn: Any, item: Any) -> tuple[Any, int, Tensor]:
    """`(label, index, probs)` for one item: a path, PIL image or uint8 `(H, W, C)` array of a photo, or a tensor
    (or array) as the dataset gives it, put through the validation pipeline."""
    pipe = pipeline(learn)
    if pipe is None:  # data learnloop can't describe: the item is taken as one sample, as the model takes it
        xb = torch.as_tensor(item).unsqueeze(0)
        if not xb.is_floating_point():
            raise ValueError(f"this learner has no input pipeline (its model file predates them, or its data is of "
                             f"a kind learnloop can't record), so an item goes to the model as it is; got "
                             f"{xb.dtype} pixels: pass the sample as the model takes it (floats, normalised).")
    else:
        xb = apply_tfms(pipe.load(item).unsqueeze(0), pipe.batch_tfms)
    p = probs(learn, xb)[0]
    index = int(p.argmax())
    return label_of(learn, index), index, p


def apply_tfms(xb: Tensor, tfms: Iterable) -> Tensor:
    """`xb` through the batch transforms `tfms`, in order."""
    for f in tfms:
        xb = f(xb)
    return xb


def label_of(learn: Any, index: int) -> Any:
    """The label of class `index`: from the classes, else the index itself."""
    names = classes(learn)
    return index if names is None else names[index]


def predict_dl(learn: Any, dl: Iterable) -> tuple[Tensor, Tensor]:
    """`(probs, targets)` over a loader of `(xb, yb)` batches, e.g. `learn.dls.test_dl(items)`."""
    ps, ys = [], []
    for xb, yb in dl:
        ps.append(probs(learn, xb))
        ys.append(torch.as_tensor(yb))
    return torch.cat(ps), torch.cat(ys)


def image_items(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The images to predict: each path that is a file, and the images anywhere under each folder (sorted; hidden
    files and folders and files that are not images skipped). A MissingFileError names a path that does not exist."""
    items: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            items += images_under(str(path))
        elif path.exists():
            items.append(str(path))
        else:
            raise MissingFileError(f"{path} does not exist: pass image files or folders of images.")
    return items


def predict_items(learn: Any, items: Sequence[Any], top: int = 1, bs: int | None = None,
                  n_workers: int = 0) -> Iterator[tuple[Any, list[tuple[Any, float]] | str]]:
    """For each item, in order and batch by batch as they are predicted: `(item, [(label, prob), ...])` with the
    `top` most likely labels, or `(item, reason)` for one that can't be read (the others are still predicted)."""
    pipe = pipeline(learn)
    dl = learn.dls.test_dl(items, bs=bs, n_workers=n_workers, skip_errors=True)
    fast = _channels_last(learn.model, torch.channels_last)
    i = 0
    try:
        for xb, yb in dl:
            ps = probs(learn, xb.contiguous(memory_format=torch.channels_last) if fast and xb.ndim == 4 else xb)
            values, indices = ps.topk(min(top, ps.shape[-1]), dim=-1)
            for ok, vs, ixs in zip((torch.as_tensor(yb) >= 0).tolist(), values.tolist(), indices.tolist()):
                item = items[i]
                yield item, ([(label_of(learn, k), v) for k, v in zip(ixs, vs)] if ok else _unreadable(pipe, item))
                i += 1
    finally:
        dl.close()
        if fast:
            _channels_last(learn.model, torch.contiguous_format)


def _channels_last(model: Any, memory_format: torch.memory_format) -> bool:
    """Put a torch model's 4-d weights in `memory_format`; True if it has convolutions. Channels-last convolutions
    run about 2x faster on CPU (and on GPUs), with the same weights."""
    if not isinstance(model, torch.nn.Module) or not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return False
    model.to(memory_format=memory_format)
    return True


def _unreadable(pipe: Pipeline, item: Any) -> str:
    """Why `item` can't be read (read again here: the worker that failed could only mark it)."""
    try:
        pipe.load(item)
    except READ_ERRORS as e:
        return f"{type(e).__name__}: {e}"
    return "it could not be read"
