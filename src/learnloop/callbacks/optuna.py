"""Optuna pruning: report a monitored figure to a trial every epoch and stop the fit when the trial should be pruned.

optuna is optional (`pip install "learnloop[optuna]"`); the callback only calls the `trial` it is given.
"""

from __future__ import annotations

from typing import Any

from .core import Callback, CancelFitException


class OptunaPruning(Callback):
    """Reports `learn.history[-1][monitor]` to `trial` after every epoch (step = epoch); when `trial.should_prune()`,
    stops the fit cleanly (`CancelFitException`: after_fit runs, loggers and checkpoints close) and then raises
    `optuna.TrialPruned` from the fit, so the study marks the trial PRUNED. One process (not under torchrun)."""

    order = 100  # after the Recorder wrote the row and the others' after_epoch; last in after_fit, which it ends
    during_lr_find = False

    def __init__(self, trial: Any, monitor: str = "valid_loss"):
        self.trial, self.monitor, self.pruned_at = trial, monitor, None

    def before_fit(self):
        self.pruned_at = None

    def after_epoch(self):
        row = self.history[-1]
        if self.monitor not in row:
            keys = ", ".join(k for k in row if k not in ("epoch", "time"))
            raise KeyError(f"OptunaPruning(monitor={self.monitor!r}): no such column in learn.history; it has {keys}.")
        self.trial.report(float(row[self.monitor]), step=row["epoch"])
        if self.trial.should_prune():
            self.pruned_at = row["epoch"]
            raise CancelFitException()

    def after_fit(self):
        if self.pruned_at is not None and self.error is None:  # stopped by us, not by an error the fit re-raises
            import optuna

            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at} ({self.monitor} "
                                     f"{self.history[-1][self.monitor]:.4g})")
