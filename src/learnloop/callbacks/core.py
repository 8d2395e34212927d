"""Events, the `Callback` base and the exceptions that cancel a phase: the vocabulary of the loop.

This module imports nothing of the loop: `learner.py` and every callback import it, never the reverse.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable
from typing import Any


class CancelStepException(Exception):
    """Skip this batch's optimizer step and zero_grad (its gradients are kept); `after_cancel_step` and
    `after_step` still run. Raise it in `before_step`."""


class CancelBatchException(Exception):
    """Skip the rest of this batch; `after_cancel_batch` and `after_batch` still run."""


class CancelTrainException(Exception):
    """Skip the rest of this training phase; `after_cancel_train` and `after_train` still run."""


class CancelValidateException(Exception):
    """Skip the rest of this validation phase; `after_cancel_validate` and `after_validate` still run."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch; `after_cancel_epoch` and `after_epoch` still run."""


class CancelFitException(Exception):
    """Stop training; `after_cancel_fit` and `after_fit` still run."""


# Each loop level: (before event, cancel event, after event, the exception that cancels it).
LEVELS: dict[str, tuple[str, str, str, type[Exception]]] = {
    level: (f"before_{level}", f"after_cancel_{level}", f"after_{level}", exc)
    for level, exc in [
        ("fit", CancelFitException),
        ("epoch", CancelEpochException),
        ("train", CancelTrainException),
        ("validate", CancelValidateException),
        ("batch", CancelBatchException),
        ("step", CancelStepException),
    ]
}
CANCELS: tuple[type[Exception], ...] = tuple(exc for *_, exc in LEVELS.values())

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_validate", "before_batch",
    "after_pred", "after_loss", "before_backward", "after_backward", "before_step", "after_step", "after_batch",
    "after_train", "after_validate", "after_epoch", "after_fit",
    "after_cancel_step", "after_cancel_batch", "after_cancel_train", "after_cancel_validate",
    "after_cancel_epoch", "after_cancel_fit",
)  # fmt: skip

# Keras hook names a learnloop Callback might be given by habit: they never run there.
KERAS_EVENTS = {
    "on_train_begin": "before_fit", "on_train_end": "after_fit",
    "on_epoch_begin": "before_epoch", "on_epoch_end": "after_epoch",
    "on_batch_begin": "before_batch", "on_batch_end": "after_batch",
    "on_train_batch_begin": "before_batch", "on_train_batch_end": "after_batch",
    "on_test_begin": "before_validate", "on_test_end": "after_validate",
    "on_test_batch_begin": "before_batch", "on_test_batch_end": "after_batch",
    "on_predict_begin": "before_validate", "on_predict_end": "after_validate",
    "on_predict_batch_begin": "before_batch", "on_predict_batch_end": "after_batch",
}  # fmt: skip


# The learner attributes a callback reads through `self.x` (README, "The Learner and callbacks").
LEARNER_ATTRS = frozenset(
    "model dls loss_func opt lr cbs n_epoch epoch training dl iter n_iter xb yb preds loss metrics "
    "history train_iter n_train_iter pct_train hps error".split()
)


class Callback:
    """Base class: define methods named after events (`before_fit`, `after_batch`, ...).

    Inside a callback `self.model`, `self.loss`, `self.epoch`, ... read the learner's; to change the
    learner write `self.learn.x = ...` (assigning `self.x` for a learner attribute warns). Callbacks run
    in ascending `order`, then in the order they were added. No `super().__init__()` is needed.
    """

    order: int = 0
    main_only: bool = False  # True: under torchrun it runs on rank 0 alone (callbacks that print or write files)
    # False for callbacks that write files, stop training or restore weights: `lr_find` leaves them out.
    during_lr_find: bool = True
    learn: Any = None

    @property
    def name(self) -> str:
        """Snake-case class name without 'Callback': the attribute it is reachable at on the learner."""
        name = re.sub(r"Callback$", "", type(self).__name__) or "callback"
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: delegate to the learner.
        learn = self.__dict__.get("learn")
        if learn is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(learn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LEARNER_ATTRS and self.__dict__.get("learn") is not None and name not in self.__dict__:
            warnings.warn(
                f"{type(self).__name__} sets self.{name}, which shadows the learner's `{name}` for this "
                f"callback only; write `self.learn.{name} = ...` to change the learner's.",
                stacklevel=2,
            )
        object.__setattr__(self, name, value)

    def state_dict(self) -> dict:
        """This callback's state for a checkpoint (empty: override in stateful callbacks)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order})"


def warn_unknown_events(cb: Callback) -> None:
    """Warn about methods of `cb` that look like an event but are not one (`befor_fit`, Keras's `on_epoch_end`)."""
    for name in dir(type(cb)):
        if name in EVENTS or name.startswith("_") or hasattr(Callback, name):
            continue
        if name in KERAS_EVENTS:
            hint = (f"did you mean {KERAS_EVENTS[name]!r}? {name} is a Keras hook: for Keras-style hooks subclass "
                    f"keras.callbacks.Callback or pass a plain object, not a learnloop Callback.")
        else:
            close = difflib.get_close_matches(name, EVENTS, n=1, cutoff=0.8)
            if not close:
                continue
            hint = f"did you mean {close[0]!r}?"
        warnings.warn(
            f"{type(cb).__name__}.{name} is not an event, so it never runs; {hint} Events: {', '.join(EVENTS)}",
            stacklevel=4,
        )


# -- adapters: other libraries' callback objects, wrapped at the edge ---------------------------------------------
Adapter = Callable[[Any], "Callback | None"]
ADAPTERS: list[tuple[Adapter, str]] = []  # (adapter, what it accepts, for the error message); `register_adapter`


def register_adapter(adapter: Adapter, accepts: str) -> None:
    """Let `as_callback` (and so `Learner.add_cbs`) take objects that are not Callbacks: `adapter(obj)` returns a
    Callback wrapping `obj`, or None when `obj` is not its kind; `accepts` says what it takes, for errors."""
    if all(known is not adapter for known, _ in ADAPTERS):
        ADAPTERS.append((adapter, accepts))


def as_callback(obj: Any) -> Callback:
    """`obj` if it is a `Callback`, else what the first registered adapter that takes it wraps it in (Keras's)."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, type):
        raise TypeError(f"Got the class {obj.__name__}, not an instance: pass {obj.__name__}().")
    for adapter, _ in ADAPTERS:
        cb = adapter(obj)
        if cb is not None:
            return cb
    raise TypeError(f"{obj!r} is not a callback: subclass learnloop.Callback and define event methods (before_fit, "
                    f"after_batch, ...)" + "".join(f", or {accepts}" for _, accepts in ADAPTERS) + ".")
