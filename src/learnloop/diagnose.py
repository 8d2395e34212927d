"""Clear errors for the usual mistakes, in one place.

The Learner wraps the forward and loss calls of each batch in a `try` (free until something raises) and
passes what they raise to `explain`, which inspects the batch only then: the hot loop pays nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from .nn.layers import ConvLayer


def explain(exc: Exception, learn: Any, stage: str) -> Exception:
    """A clearer exception for `exc`, raised at `stage` ("forward" or "loss") of a batch; `exc` if none fits."""
    if "channels-last" in str(exc):  # already explained (learnloop's ConvLayer)
        return exc
    diagnose = _FORWARD if stage == "forward" else _LOSS
    for check in diagnose:
        new = check(learn)
        if new is not None:
            new.__cause__ = exc  # as `raise new from exc`
            return new
    return exc


def _where(learn: Any) -> str:
    return f"(epoch {learn.epoch}, {'train' if learn.training else 'valid'} batch {learn.iter})"


# -- forward -----------------------------------------------------------------------------------
def _first_conv_in_channels(model: Any) -> int | None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return m.in_channels
        if isinstance(m, ConvLayer):
            return m.ni
    return None


def _channels_last(learn: Any) -> Exception | None:
    xb, c = learn.xb, _first_conv_in_channels(learn.model)
    if isinstance(xb, torch.Tensor) and xb.ndim == 4 and c is not None and xb.shape[-1] == c != xb.shape[1]:
        return ValueError(
            f"The model's first conv expects {c} channels in dim 1, (N, {c}, H, W), but the batch has shape "
            f"{tuple(xb.shape)}: these look like channels-last (NHWC) images {_where(learn)}. Convert them with "
            f"learnloop.data.ToCHW (e.g. DataLoader(..., batch_tfms=[ToCHW()])) or x.permute(0, 3, 1, 2)."
        )
    return None


def _uint8_input(learn: Any) -> Exception | None:
    xb = learn.xb
    float_model = any(p.is_floating_point() for p in learn.model.parameters())
    if isinstance(xb, torch.Tensor) and xb.dtype == torch.uint8 and float_model:
        return TypeError(
            f"The batch is uint8 (raw pixel values 0..255) but the model's weights are floating point "
            f"{_where(learn)}. Scale the images to float, e.g. x.float() / 255, then standardise them with "
            f"learnloop.data.Normalize (DataLoader(..., batch_tfms=[lambda x: x.float() / 255, Normalize(...)])."
        )
    return None


# -- loss --------------------------------------------------------------------------------------
def _shape_mismatch(learn: Any) -> Exception | None:
    preds, yb = learn.preds, learn.yb
    if not (isinstance(preds, torch.Tensor) and isinstance(yb, torch.Tensor)):
        return None
    classes = not yb.is_floating_point()
    expected = (preds.ndim == yb.ndim + 1 and preds.shape[:1] + preds.shape[2:] == yb.shape) if classes else (
        preds.shape == yb.shape)
    if expected:
        return None
    hint = ("for class-index targets of shape (N,) the model must output (N, n_classes): end it with a pooling "
            "and/or Flatten layer and a last layer with n_classes outputs" if classes else
            "for float targets the model's output must have the targets' shape: check the last layer's size, or "
            "reshape the targets (e.g. y.view(-1, 1))")
    return ValueError(f"The model's output has shape {tuple(preds.shape)} but the targets have shape "
                      f"{tuple(yb.shape)} {_where(learn)}: {hint}.")


def _label_out_of_range(learn: Any) -> Exception | None:
    preds, yb = learn.preds, learn.yb
    if not (isinstance(preds, torch.Tensor) and isinstance(yb, torch.Tensor)) or yb.is_floating_point():
        return None
    n_classes = preds.shape[1] if preds.ndim > 1 else 1
    bad = yb[(yb < 0) | (yb >= n_classes)]
    if bad.numel() == 0:
        return None
    vocab = getattr(getattr(learn.dl, "dataset", None), "vocab", None)
    known = f" The dataset's label vocab is {list(vocab)}." if vocab is not None else ""
    return ValueError(
        f"Label {int(bad[0])} is outside [0, {n_classes}): the model outputs {n_classes} classes "
        f"{_where(learn)}; bad labels in this batch: {sorted(set(bad.tolist()))[:10]}.{known} Give the model's "
        f"last layer as many outputs as there are classes, or map the labels to 0..n_classes-1 (LabelVocab)."
    )


_FORWARD = (_channels_last, _uint8_input)
_LOSS = (_shape_mismatch, _label_out_of_range)


def check_train_loader(dl: Any) -> None:
    """Raise a ValueError naming the dataset size, bs and drop_last when the train loader has no batches."""
    try:
        n = len(dl)
    except TypeError:  # an iterable without a length: nothing to check up front
        return
    if n > 0:
        return
    ds = getattr(dl, "dataset", None)
    if ds is None or not hasattr(ds, "__len__"):
        raise ValueError(f"The train loader ({type(dl).__name__}) yields no batches: give the Learner data to train on.")
    bs, drop_last = getattr(dl, "bs", getattr(dl, "batch_size", None)), getattr(dl, "drop_last", None)
    raise ValueError(
        f"The train loader yields no batches: its dataset has {len(ds)} samples, bs={bs}, drop_last={drop_last}. "
        f"Check the data path or filter that built the dataset, or use a smaller bs or drop_last=False."
    )
