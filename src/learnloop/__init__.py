"""learnloop: a small, fast, hackable training loop for PyTorch."""

from .learner import (
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelTrainException,
    CancelValidateException,
    Learner,
)
from .callbacks import Callback
from .saving import load_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Learner", "Callback", "load_checkpoint",
    "CancelBatchException", "CancelTrainException", "CancelValidateException",
    "CancelEpochException", "CancelFitException",
]  # fmt: skip
