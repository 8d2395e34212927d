"""Callbacks: one theme per module. Everything a fit does beyond the bare loop lives here."""

from .activations import ActivationStats
from .checkpoint import Checkpoint
from .core import (
    EVENTS, Callback, CancelBatchException, CancelEpochException, CancelFitException, CancelStepException,
    CancelTrainException, CancelValidateException, as_callback, register_adapter,
)  # fmt: skip
from .ddp import DistributedCallback
from .defaults import default_callbacks
from .interrupt import FitInterrupted, GracefulInterrupt
from .keras import KerasCallback  # registers the Keras adapter
from .logging import CSVLogger, TensorBoardCallback, monitoring_callbacks
from .lr_find import LRFinder, LRFindResult
from .mlflow import MLflowCallback
from .monitor import EarlyStopping, SaveBest
from .optuna import OptunaPruning
from .progress import ProgressCallback
from .recorder import GatherPreds, Recorder
from .schedule import (
    FineTune, OneCycle, ParamScheduler, TorchScheduler, combine_scheds, sched_cos, sched_exp, sched_lin, sched_no,
)  # fmt: skip
from .training import (
    ChannelsLast, CompileModel, GradientAccumulation, GradientClip, MixedPrecision, TerminateOnNaN,
)  # fmt: skip
from .wandb import WandbCallback

__all__ = [
    "Callback", "EVENTS", "CancelBatchException", "CancelTrainException", "CancelValidateException",
    "CancelEpochException", "CancelFitException", "CancelStepException", "as_callback", "register_adapter",
    "default_callbacks", "KerasCallback", "Recorder", "GatherPreds", "ProgressCallback", "TerminateOnNaN",
    "ActivationStats", "TensorBoardCallback", "CSVLogger", "MLflowCallback", "monitoring_callbacks",
    "ParamScheduler", "OneCycle", "FineTune", "LRFinder", "LRFindResult", "TorchScheduler", "sched_lin", "sched_cos",
    "sched_exp", "sched_no", "combine_scheds", "Checkpoint", "GracefulInterrupt", "FitInterrupted",
    "EarlyStopping", "SaveBest", "GradientClip", "MixedPrecision", "ChannelsLast", "GradientAccumulation",
    "CompileModel", "DistributedCallback", "WandbCallback", "OptunaPruning",
]  # fmt: skip
