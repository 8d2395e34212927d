"""learnloop: a small, fast, hackable training loop for PyTorch."""

from .learner import (
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelTrainException,
    CancelValidateException,
    Learner,
)
from .api import fit
from .callbacks import Callback, FitInterrupted
from .errors import UserError
from .saving import load_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Learner", "Callback", "fit", "load_checkpoint", "FitInterrupted", "UserError",
    "CancelBatchException", "CancelTrainException", "CancelValidateException",
    "CancelEpochException", "CancelFitException",
]  # fmt: skip
