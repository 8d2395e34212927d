"""Start-up: when the command started, and the latch that holds a Ctrl-C until the imports, data and model are
done (raised inside torch's import it aborts the process through a C++ terminate, and other libraries swallow it
or turn it into another error, such as numpy's "cannot load module more than once")."""

from __future__ import annotations

import signal
import time

from ..signals import SignalLatch

START = time.perf_counter()  # the command's start, give or take the interpreter's own
STARTED_AT = time.time()  # the same moment on the clock files are stamped with

START_UP = SignalLatch((signal.SIGINT,), then="stopping before training starts")


def started() -> None:
    """Start-up is over: act on a Ctrl-C held during it now, and on any later one at once, as Python does."""
    if START_UP.received is not None:
        raise KeyboardInterrupt
    START_UP.restore()
