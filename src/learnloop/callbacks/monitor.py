"""Callbacks that watch a figure of `learn.history` each epoch: `EarlyStopping` stops the fit when it stalls,
`SaveBest` keeps the weights of its best epoch."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..distributed import barrier, is_main, unwrap
from ..saving import atomic_save, load_checkpoint
from .core import Callback, CancelFitException

# Names of figures where higher is better (`mode="auto"` reads them as max).
MAX_WORDS = ("acc", "auc", "f1", "precision", "recall", "score", "iou", "dice")  # higher is better


class _Monitor(Callback):
    """Reads `monitor` from the epoch's `learn.history` row and tells whether it improved on `best`."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}.")
        if mode == "auto":
            mode = "max" if any(word in monitor.lower() for word in MAX_WORDS) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def before_fit(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def _value(self) -> float:
        row = self.history[-1]
        if self.monitor not in row:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not in learn.history. Available keys "
                f"are: {', '.join(k for k in row if k not in ('epoch', 'time'))}. Pass monitor=<one of them>."
            )
        return float(row[self.monitor])

    def _improved(self, value: float) -> bool:
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better

    def state_dict(self) -> dict:
        """The best value so far."""
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.best = state["best"]


class EarlyStopping(_Monitor):
    """Stops the fit (CancelFitException) when `monitor` has not improved by more than `min_delta` for
    `patience` epochs; `mode` "min", "max", or "auto" (max for accuracy-like names, else min)."""

    order = 80  # after the Recorder (50) wrote the epoch's row, before Checkpoint (90)
    during_lr_find = False

    def __init__(self, monitor: str = "valid_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto"):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0 (epochs without improvement), got {patience!r}.")
        super().__init__(monitor, mode, min_delta)
        self.patience, self.wait, self.stopped_epoch = patience, 0, None

    def before_fit(self):
        super().before_fit()
        self.wait, self.stopped_epoch = 0, None

    def before_epoch(self):
        if self.stopped_epoch is not None:  # restored from the checkpoint of a fit that had stopped
            raise CancelFitException()

    def after_epoch(self):
        if self._improved(self._value()):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = self.epoch
            raise CancelFitException()

    def state_dict(self) -> dict:
        """The best value, the epochs waited since it, and the epoch it stopped at (or None)."""
        return {**super().state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        super().load_state_dict(state)
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]


class SaveBest(_Monitor):
    """Saves the model's weights to `path` (atomically) whenever `monitor` improves; with `restore`, loads
    the best weights back into the model when the fit ends (not when it raises)."""

    order = 95  # after Checkpoint (90), so a final checkpoint holds the last weights, not the restored best
    during_lr_find = False

    def __init__(self, path: str | os.PathLike, monitor: str = "valid_loss", mode: str = "auto", restore: bool = True):
        super().__init__(monitor, mode)
        self.path, self.restore, self.best_epoch = Path(path), restore, None

    def after_epoch(self):
        if self._improved(self._value()):
            self.best_epoch = self.epoch
            if is_main():  # under torchrun rank 0 writes, every rank reads it back in after_fit
                state = {"model": unwrap(self.model).state_dict(), "epoch": self.epoch, self.monitor: self.best}
                atomic_save(state, self.path)

    def after_fit(self):
        if self.restore and self.best_epoch is not None and self.learn.error is None:
            barrier()  # under torchrun: rank 0's last write is done before any rank reads
            unwrap(self.model).load_state_dict(load_checkpoint(self.path)["model"])

    def state_dict(self) -> dict:
        """The best value and its epoch."""
        return {**super().state_dict(), "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        super().load_state_dict(state)
        self.best_epoch = state["best_epoch"]
