"""learnloop: a small, fast, hackable training loop for PyTorch."""

from .api import fit
from .callbacks.core import (
    EVENTS, Callback, CancelBatchException, CancelEpochException, CancelFitException, CancelTrainException,
    CancelValidateException,
)  # fmt: skip
from .learner import Learner
from .saving import load_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Learner", "Callback", "EVENTS", "fit", "load_checkpoint",
    "CancelBatchException", "CancelTrainException", "CancelValidateException",
    "CancelEpochException", "CancelFitException",
]  # fmt: skip
