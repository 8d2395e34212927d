"""Callbacks: one theme per module. Everything a fit does beyond the bare loop lives here."""

from .core import Callback, as_callback
from .keras import KerasCallback
from .metrics import Recorder
from .progress import ProgressCallback
from .schedule import (
    LRFinder,
    LRFindResult,
    OneCycle,
    ParamScheduler,
    TorchScheduler,
    combine_scheds,
    sched_cos,
    sched_exp,
    sched_lin,
    sched_no,
)
from .training import TerminateOnNaN

__all__ = [
    "Callback", "as_callback", "KerasCallback", "Recorder", "ProgressCallback", "TerminateOnNaN",
    "ParamScheduler", "OneCycle", "LRFinder", "LRFindResult", "TorchScheduler",
    "sched_lin", "sched_cos", "sched_exp", "sched_no", "combine_scheds",
]  # fmt: skip
