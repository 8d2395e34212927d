"""The callbacks every Learner starts with, in one visible place; `Learner(..., default_cbs=[...])` replaces them."""

from __future__ import annotations

from .core import Callback
from .ddp import distributed_callbacks
from .interrupt import GracefulInterrupt
from .progress import ProgressCallback
from .recorder import Recorder
from .training import TerminateOnNaN


def default_callbacks(progress: bool = True) -> list[Callback]:
    """What a Learner installs unless given `default_cbs`: `Recorder` (history, losses, what `validate` returns),
    `TerminateOnNaN` (stops at a non-finite loss), `GracefulInterrupt` (Ctrl-C or SIGTERM stops the fit after the
    batch), `ProgressCallback` (with `progress`) and, under torchrun, `DistributedCallback`."""
    return [Recorder(), TerminateOnNaN(), GracefulInterrupt(), *([ProgressCallback()] if progress else []),
            *distributed_callbacks()]
