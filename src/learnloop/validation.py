"""Evaluation on the loop's own validation phase, for `learn.validate` and `learn.get_preds`: the learner's
callbacks (and those added for the call) see the same events as in a fit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .callbacks.recorder import GatherPreds, Recorder

# What a validation run changes on the learner; put back after, so one called from a callback leaves the fit as it was.
LOOP_STATE = ("training", "dl", "iter", "n_iter", "xb", "yb", "preds", "loss")


@contextmanager
def model_mode_kept(model: Any) -> Iterator[None]:
    """Put `model` back in the mode (train or eval) it was in, whatever the block does."""
    was_training = model.training
    try:
        yield
    finally:
        model.train(was_training)


def run_validation(learn: Any, dl: Iterable | None = None, cbs: Iterable | None = None) -> None:
    """The loop's validation phase over `dl` (the valid loader by default), with `cbs` added for it."""
    dl = learn.dls.valid if dl is None else dl
    if dl is None:
        raise ValueError("There is no valid loader: pass one, e.g. learn.validate(test_dl).")
    saved = {k: getattr(learn, k) for k in LOOP_STATE}
    try:
        with model_mode_kept(learn.model), learn.added_cbs(cbs):
            learn.one_epoch(False, dl)
    finally:
        vars(learn).update(saved)


def validation_results(learn: Any, dl: Iterable | None = None, cbs: Iterable | None = None) -> dict[str, float]:
    """`learn.validate`: the loss and metrics of a validation run, as the learner's `Recorder` computes them."""
    recorder = getattr(learn, "recorder", None)
    if not isinstance(recorder, Recorder):  # a learner made with default_cbs lacking one: one for this call
        recorder = Recorder()
        cbs = [recorder, *(cbs or [])]
    run_validation(learn, dl, cbs)
    return dict(recorder.valid_results)


def gather_preds(learn: Any, dl: Iterable | None = None, cbs: Iterable | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`learn.get_preds`: the model's outputs and the targets of a validation run."""
    gather = GatherPreds()
    run_validation(learn, dl, [gather, *(cbs or [])])
    return gather.outputs, gather.targets
