"""Callbacks: one theme per module. Everything a fit does beyond the bare loop lives here."""

from .activations import ActivationStats
from .checkpoint import Checkpoint
from .core import Callback, as_callback
from .keras import KerasCallback
from .logging import CSVLogger, TensorBoardCallback, monitoring_callbacks
from .metrics import Recorder
from .mlflow import MLflowCallback
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
from .training import (
    ChannelsLast,
    CompileModel,
    EarlyStopping,
    GradientAccumulation,
    GradientClip,
    MixedPrecision,
    SaveBest,
    TerminateOnNaN,
)

__all__ = [
    "Callback", "as_callback", "KerasCallback", "Recorder", "ProgressCallback", "TerminateOnNaN",
    "ActivationStats", "TensorBoardCallback", "CSVLogger", "monitoring_callbacks", "MLflowCallback",
    "ParamScheduler", "OneCycle", "LRFinder", "LRFindResult", "TorchScheduler",
    "sched_lin", "sched_cos", "sched_exp", "sched_no", "combine_scheds",
    "Checkpoint", "EarlyStopping", "SaveBest", "GradientClip",
    "MixedPrecision", "ChannelsLast", "GradientAccumulation", "CompileModel",
]  # fmt: skip
