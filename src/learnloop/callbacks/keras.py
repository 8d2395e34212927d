"""Keras-style callbacks (`on_epoch_end(epoch, logs)`, ...) running inside the learnloop loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .core import Callback, CancelFitException

# Keras hook -> the learnloop event it runs on.
KERAS_HOOKS = {
    "on_train_begin": "before_fit",
    "on_epoch_begin": "before_epoch",
    "on_batch_begin": "before_batch",
    "on_train_batch_begin": "before_batch",
    "on_batch_end": "after_batch",
    "on_train_batch_end": "after_batch",
    "on_epoch_end": "after_epoch",
    "on_train_end": "after_fit",
}
_BATCH_HOOKS = {"on_batch_begin", "on_train_batch_begin", "on_batch_end", "on_train_batch_end"}


class KerasCallback(Callback):
    """Adapts an object with Keras-style `on_*` methods; arguments are bound by parameter name.

    Each hook gets what its signature asks for: `epoch`, `batch` (or `batch_idx`), `loss`, and
    `logs` (or `kwargs`), a dict with `loss`, `val_loss`, `val_<metric>` and `lr`. Epochs are 0-based.
    Setting `model.stop_training = True` (as in Keras) stops the fit.
    """

    order = 70
    during_lr_find = False  # Keras callbacks log and stop training; Keras has no lr finder for them to expect

    def __init__(self, obj: Any):
        self.obj = obj
        self.calls: dict[str, list[Callable[[], None]]] = {}
        for hook, event in KERAS_HOOKS.items():
            method = getattr(obj, hook, None)
            if callable(method):
                self.calls.setdefault(event, []).append(self._binder(hook, method))

    @property
    def name(self) -> str:
        """Named after the wrapped object's class."""
        return "keras_" + type(self.obj).__name__.lower()

    def _binder(self, hook: str, method: Callable) -> Callable[[], None]:
        params = list(inspect.signature(method).parameters)
        is_batch = hook in _BATCH_HOOKS

        def call() -> None:
            if is_batch and not self.training:
                return
            values = {"epoch": self.epoch, "batch": self.iter, "batch_idx": self.iter}
            args = [self._value(p, values, hook) for p in params]
            method(*args)

        return call

    def _value(self, param: str, values: dict, hook: str) -> Any:
        if param in values:
            return values[param]
        if param == "loss":
            return self._logs(hook).get("loss")
        return self._logs(hook)  # `logs`, `kwargs` or any other name: the logs dict

    def _logs(self, hook: str) -> dict:
        logs: dict[str, Any] = {"lr": self.learn.lr}
        if hook in ("on_batch_end", "on_train_batch_end"):
            logs["loss"] = self.loss.item()
        elif hook in ("on_epoch_end", "on_train_end") and self.history:
            row = self.history[-1]
            logs["loss"] = row.get("train_loss")
            for key, value in row.items():
                if key.startswith("valid_"):
                    logs["val_" + key[len("valid_"):]] = value
        return logs

    def _run(self, event: str) -> None:
        for call in self.calls.get(event, ()):
            call()
        if getattr(self.model, "stop_training", False) and event != "after_fit":
            self.model.stop_training = False
            raise CancelFitException()

    def before_fit(self):
        if hasattr(self.obj, "set_model"):
            self.obj.set_model(self.model)
        elif not hasattr(self.obj, "model"):
            self.obj.model = self.model
        self._run("before_fit")

    def before_epoch(self):
        self._run("before_epoch")

    def before_batch(self):
        self._run("before_batch")

    def after_batch(self):
        self._run("after_batch")

    def after_epoch(self):
        self._run("after_epoch")

    def after_fit(self):
        self._run("after_fit")


def as_callback(obj: Any) -> Callback:
    """`obj` if it is a `Callback`; a Keras-style object (`on_epoch_end`, ...) wrapped in `KerasCallback`."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, type):
        raise TypeError(f"Got the class {obj.__name__}, not an instance: pass {obj.__name__}().")
    if any(callable(getattr(obj, hook, None)) for hook in KERAS_HOOKS):
        return KerasCallback(obj)
    raise TypeError(
        f"{obj!r} is not a callback: subclass learnloop.Callback and define event methods "
        f"(before_fit, after_batch, ...), or give it Keras-style methods ({', '.join(KERAS_HOOKS)})."
    )
