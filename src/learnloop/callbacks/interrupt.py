"""Graceful interrupts: the first Ctrl-C (SIGINT) or SIGTERM ends the fit at the end of the current batch.

A signal handler may run between any two bytecodes, in the middle of an optimizer step; raising there leaves
the weights, records and random state half-way through a batch. So the handler only notes the signal, and the
fit stops where its state is whole: after the current training batch, with the last checkpoint written at that
exact point through the fit's `Checkpoint` callback, so a resume continues bit for bit. A second signal raises
`KeyboardInterrupt` at once (Python's default), for a fit that must die now.
"""

from __future__ import annotations

import signal
import threading

from ..distributed import is_distributed
from ..signals import FitInterrupted, SignalLatch
from .checkpoint import Checkpoint
from .core import Callback

__all__ = ["FitInterrupted", "GracefulInterrupt", "SignalLatch"]


class GracefulInterrupt(Callback):
    """Turns the first SIGINT or SIGTERM during a fit into a clean stop (see the module's docstring): after the
    current training batch (or at the end of the epoch, when the signal comes during validation or the epoch's
    last training batch), writes the fit's `Checkpoint` there and raises `FitInterrupted`, so `after_fit` cleanup
    runs. Installed by default; handlers are set in the main thread only, and not under torchrun, where ranks
    would stop at different batches. The previous handlers are back after the fit."""

    order = 95  # after the Recorder and the Checkpoint (90): the batch's records are complete when it stops

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = tuple(signals)
        self.latch = SignalLatch(self.signals, then="stopping after this batch")

    @property
    def received(self) -> int | None:
        """The first signal of this fit, or None."""
        return self.latch.received

    def before_fit(self):
        self.latch.received = None
        if threading.current_thread() is threading.main_thread() and not is_distributed():
            self.latch.install()

    def after_batch(self):
        if self.received is None or not self.training:
            return
        it = self.iter + 1
        if it < self.n_iter:  # at the epoch's last batch, validation then the epoch's end come first
            self._stop(self.epoch, it)

    def after_epoch(self):
        if self.received is not None:
            self._stop(self.epoch + 1, 0)

    def _stop(self, epoch: int, it: int) -> None:
        ckpt = next((cb for cb in self.learn.cbs if isinstance(cb, Checkpoint)), None)
        saved_at = ckpt.save_on_stop(epoch, it) if ckpt is not None else None
        raise FitInterrupted(self.received, (epoch, it), ckpt.path if ckpt else None, saved_at,
                             len(self.dls.train))

    def after_fit(self):
        self.latch.restore()
