"""Callbacks: one theme per module. Everything a fit does beyond the bare loop lives here."""

from .core import Callback, as_callback
from .keras import KerasCallback
from .metrics import Recorder
from .progress import ProgressCallback
from .training import TerminateOnNaN

__all__ = ["Callback", "as_callback", "KerasCallback", "Recorder", "ProgressCallback", "TerminateOnNaN"]
