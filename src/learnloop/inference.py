"""Predictions of a trained learner: class probabilities for one item or a whole test loader, through the
validation pipeline (`learn.dls.pipeline`), and the label of each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from .data.pipeline import Pipeline, pipeline_of


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
