"""learnloop: a small, fast, hackable training loop for PyTorch.

Names are imported on first use (PEP 562), so `import learnloop` and `learnloop --help` cost no torch import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Learner": "learnloop.learner",
    "fit": "learnloop.api",
    "load_learner": "learnloop.api",
    "load_checkpoint": "learnloop.saving",
    "FitInterrupted": "learnloop.signals",
    "UserError": "learnloop.errors",
    **{name: "learnloop.callbacks.core" for name in (
        "Callback", "EVENTS", "CancelBatchException", "CancelTrainException", "CancelValidateException",
        "CancelEpochException", "CancelFitException", "CancelStepException",
    )},
}  # fmt: skip

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from .api import fit, load_learner
    from .callbacks.core import (
        EVENTS, Callback, CancelBatchException, CancelEpochException, CancelFitException, CancelStepException,
        CancelTrainException, CancelValidateException,
    )  # fmt: skip
    from .signals import FitInterrupted
    from .errors import UserError
    from .learner import Learner
    from .saving import load_checkpoint


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'learnloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
