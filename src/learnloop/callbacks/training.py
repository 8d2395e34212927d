"""Callbacks that change how a batch trains: the non-finite loss guard, and friends."""

from __future__ import annotations

import warnings

import torch

from ..learner import CancelFitException
from .core import Callback


class TerminateOnNaN(Callback):
    """Stops the fit at the first NaN/inf training loss, before the step, so weights stay finite."""

    order = 40

    def after_loss(self):
        if self.training and not torch.isfinite(self.loss).all():
            warnings.warn(
                f"Stopping: the training loss is {self.loss.item()} at epoch {self.epoch}, batch "
                f"{self.iter}, lr {self.lr:g}. Lower the lr (try learn.lr_find()) or clip gradients.",
                RuntimeWarning,
                stacklevel=2,
            )
            raise CancelFitException()
