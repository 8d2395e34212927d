"""Graceful interrupts: the first Ctrl-C (SIGINT) or SIGTERM ends the fit at the end of the current batch.

A signal handler may run between any two bytecodes, in the middle of an optimizer step; raising there leaves
the weights, records and random state half-way through a batch. So the handler only notes the signal, and the
fit stops where its state is whole: after the current training batch, with the last checkpoint written at that
exact point through the fit's `Checkpoint` callback, so a resume continues bit for bit. A second signal raises
`KeyboardInterrupt` at once (Python's default), for a fit that must die now.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..distributed import is_distributed
from .checkpoint import Checkpoint, _has_loader_state
from .core import Callback


class FitInterrupted(KeyboardInterrupt):
    """A fit stopped by SIGINT or SIGTERM at a clean point. `signum` is the signal, `position` the (epoch, batch)
    it stopped before, `checkpoint` the file that resumes it (None without a `Checkpoint` callback) and
    `saved_at` the (epoch, batch) that file resumes at."""

    def __init__(self, signum: int, position: tuple[int, int], checkpoint: Path | None,
                 saved_at: tuple[int, int] | None, n_batches: int):
        self.signum, self.position, self.checkpoint, self.saved_at = signum, position, checkpoint, saved_at
        self.n_batches = n_batches
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str:
        """'SIGINT', 'SIGTERM', ..."""
        return signal.Signals(self.signum).name

    def describe(self) -> str:
        """One line: what stopped the fit, where, and what a resume starts from."""
        epoch, it = self.position
        where = f"{self.signal_name} stopped the fit at epoch {epoch}, batch {it}/{self.n_batches}"
        if self.checkpoint is None:
            return f"{where}; nothing was saved (add a Checkpoint callback to be able to resume)."
        if self.saved_at == self.position:
            return f"{where}; saved {self.checkpoint}."
        if self.saved_at is None:
            return f"{where}; no checkpoint could be written yet, so there is nothing to resume from."
        return (f"{where}; {self.checkpoint} (epoch {self.saved_at[0]}, batch {self.saved_at[1]}) is the last "
                f"checkpoint: its train loader can't resume mid-epoch.")


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
            self._stop(self.epoch, it, mid_epoch=True)

    def after_epoch(self):
        if self.received is not None:
            self._stop(self.epoch + 1, 0, mid_epoch=False)

    def _stop(self, epoch: int, it: int, mid_epoch: bool) -> None:
        ckpt = next((cb for cb in self.learn.cbs if isinstance(cb, Checkpoint)), None)
        saved_at = None
        if ckpt is not None:
            resumable = not mid_epoch or _has_loader_state(self.dls.train)
            if resumable and ckpt.saved_at != (epoch, it):
                ckpt.save(epoch, it)  # skipped (with a warning) when the weights are not finite
            saved_at = ckpt.saved_at
        raise FitInterrupted(self.received, (epoch, it), ckpt.path if ckpt else None, saved_at,
                             len(self.dls.train))

    def after_fit(self):
        self.latch.restore()


class SignalLatch:
    """Notes the first of `signals` instead of acting on it (saying it will `then`), and makes the next one raise
    `KeyboardInterrupt` at once, so a second Ctrl-C still aborts. `install` it in the main thread, `restore` the
    previous handlers after; also a context manager. Signals the process ignores (`cmd &`) stay ignored."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), then: str = "finishing first"):
        self.signals, self.then = tuple(signals), then
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> SignalLatch:
        self.received = None
        for signum in self.signals:
            handler = signal.getsignal(signum)
            if handler is signal.SIG_IGN:
                continue
            self._previous[signum] = handler
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        _notice(f"learnloop: {signal.Signals(signum).name} received: {self.then} (send it again to abort now).\n")
        for s in self._previous:
            signal.signal(s, signal.default_int_handler)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    __enter__ = install

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def _notice(text: str) -> None:
    """Write `text` to stderr from a signal handler: os.write, since a print could re-enter a buffered write."""
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):  # no real stderr (a notebook, a closed stream): stay silent
        pass
