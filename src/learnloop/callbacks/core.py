"""The `Callback` base: reads the learner's attributes as its own and hooks into named events."""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Sequence
from typing import Any

# The learner attributes a callback reads through `self.x` (DESIGN.md, "Learner contract").
LEARNER_ATTRS = frozenset(
    "model dls loss_func opt lr cbs n_epoch epoch training dl iter n_iter xb yb preds loss metrics "
    "history".split()
)


class Callback:
    """Base class: define methods named after events (`before_fit`, `after_batch`, ...).

    Inside a callback `self.model`, `self.loss`, `self.epoch`, ... read the learner's; to change the
    learner write `self.learn.x = ...` (assigning `self.x` for a learner attribute warns). Callbacks run
    in ascending `order`, then in the order they were added. No `super().__init__()` is needed.
    """

    order: int = 0
    main_only: bool = False  # True: under torchrun it runs on rank 0 alone (callbacks that print or write files)
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


def as_callback(obj: Any) -> Callback:
    """`obj` if it is a `Callback`; a Keras-style object (`on_epoch_end`, ...) wrapped in `KerasCallback`."""
    if isinstance(obj, Callback):
        return obj
    from .keras import KERAS_HOOKS, KerasCallback

    if isinstance(obj, type):
        raise TypeError(f"Got the class {obj.__name__}, not an instance: pass {obj.__name__}().")
    if any(callable(getattr(obj, hook, None)) for hook in KERAS_HOOKS):
        return KerasCallback(obj)
    raise TypeError(
        f"{obj!r} is not a callback: subclass learnloop.Callback and define event methods "
        f"(before_fit, after_batch, ...), or give it Keras-style methods ({', '.join(KERAS_HOOKS)})."
    )


def warn_unknown_events(cb: Callback, events: Sequence[str]) -> None:
    """Warn about methods of `cb` that look like a misspelled event (`befor_fit`): they would never run."""
    for name in dir(type(cb)):
        if name in events or name.startswith("_") or hasattr(Callback, name):
            continue
        close = difflib.get_close_matches(name, events, n=1, cutoff=0.85)
        if close:
            warnings.warn(
                f"{type(cb).__name__}.{name} is not an event, so it never runs; did you mean "
                f"{close[0]!r}? Events: {', '.join(events)}",
                stacklevel=4,
            )
