"""Signals without torch: `SignalLatch` (hold a Ctrl-C until a safe point) and `FitInterrupted` (a fit stopped at
one). Light to import, so that the command line can hold a Ctrl-C from its first line, before torch is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any


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
