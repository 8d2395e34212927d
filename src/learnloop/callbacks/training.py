"""Callbacks that change how a batch trains: the non-finite loss guard, and friends."""

from __future__ import annotations

import math
import warnings

import torch

from ..learner import CancelFitException
from .core import Callback


class TerminateOnNaN(Callback):
    """Stops the fit at a NaN/inf training loss: on CPU before that batch's step, elsewhere within `check_every` batches.

    On CPU the check reads the loss every batch, which costs no sync, so no step is ever taken with a non-finite
    loss. On an accelerator reading the loss would make the host wait for the device every batch, so the default
    (`check_every=None`: 1 on CPU, 50 elsewhere) folds each loss into a flag on the device and reads that flag
    every `check_every` batches and at the end of each training phase: up to `check_every - 1` steps may then
    have been taken with a bad loss, and the weights may already be non-finite. Pass `check_every=1` for the
    strict check on any device, at the price of one sync per batch.
    """

    order = 40

    def __init__(self, check_every: int | None = None):
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ValueError(f"check_every must be a positive int or None (1 on CPU, 50 elsewhere), got {check_every!r}.")
        self.check_every = check_every
        self._finite, self._first, self._pending, self._every = None, 0, 0, 1

    def after_loss(self):
        learn = self.learn  # not `self.x`: delegation through __getattr__ costs, every batch
        if not learn.training:
            return
        loss = learn.loss
        self._every = self.check_every or (1 if loss.is_cpu else 50)
        if self._every == 1:  # strict: read the loss before the step (a CPU scalar is read without a sync)
            if not (math.isfinite(loss.item()) if loss.ndim == 0 else torch.isfinite(loss).all().item()):
                self._stop(f"batch {learn.iter}")
            return
        # Deferred: one device-side AND per batch, one read per `_every` batches.
        finite = torch.isfinite(loss.detach()).all()
        if self._pending == 0:
            self._finite, self._first = finite, learn.iter
        else:
            self._finite = self._finite & finite
        self._pending += 1
        if self._pending >= self._every:
            self._check()

    def after_train(self):
        self._check()

    def _check(self) -> None:
        pending, self._pending = self._pending, 0
        if pending and not self._finite.item():
            self._stop(f"one of batches {self._first}..{self._first + pending - 1} (checked every {self._every} "
                       f"batches, so the weights may already be non-finite)")

    def _stop(self, where: str) -> None:
        warnings.warn(
            f"Stopping: the training loss is not finite at epoch {self.epoch}, {where}, lr {self.lr:g}. "
            f"Lower the lr (try learn.lr_find()) or clip gradients.",
            RuntimeWarning,
            stacklevel=3,
        )
        raise CancelFitException()
