"""Keras's hook names, and how to call one object's hook as `keras.Model.fit` would (signature reading).

keras itself is never imported here: an object is a Keras callback only if keras is already imported.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

TRAIN_HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
               "on_train_end")  # fmt: skip
TEST_HOOKS = ("on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end")
PREDICT_HOOKS = ("on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end")
LEGACY_HOOKS = ("on_batch_begin", "on_batch_end")  # Keras's old names for on_train_batch_*, still in tutorials
KERAS_HOOKS = TRAIN_HOOKS + TEST_HOOKS + PREDICT_HOOKS + LEGACY_HOOKS

# Keras callbacks that write a Keras model's own file formats (or need TensorFlow) -> learnloop's equivalent.
REFUSED = {
    "ModelCheckpoint": "learnloop.callbacks.SaveBest(path, monitor='valid_loss') to keep the best weights, or "
                       "Checkpoint(path) to save every epoch",
    "OrbaxCheckpoint": "learnloop.callbacks.Checkpoint(path)",
    "BackupAndRestore": "learnloop.callbacks.Checkpoint(path) and learn.fit(n, resume=path)",
    "TensorBoard": "learnloop.callbacks.TensorBoardCallback(log_dir)",
}  # fmt: skip

HookCall = Callable[[int | None, dict], None]  # (batch or epoch index, logs)


def keras_class(name: str) -> type | None:
    """`keras.callbacks.<name>` if keras is imported (so a Keras object can exist), else None."""
    keras = sys.modules.get("keras")
    return getattr(getattr(keras, "callbacks", None), name, None)


def is_keras(obj: Any, name: str = "Callback") -> bool:
    """Whether `obj` is a `keras.callbacks.<name>` (False when keras was never imported)."""
    cls = keras_class(name)
    return cls is not None and isinstance(obj, cls)


def has_keras_hooks(obj: Any) -> bool:
    """Whether `obj` has a Keras-style hook (`on_epoch_end`, `on_batch_end`, ...)."""
    return any(callable(getattr(obj, hook, None)) for hook in KERAS_HOOKS)


def _is_default(method: Any) -> bool:
    return getattr(method, "_is_default", False)  # Keras marks its base class's no-op hooks so


def caller(obj: Any, hook: str, batch_loss: Callable[[], float]) -> tuple[str, HookCall] | None:
    """The method of `obj` that runs for `hook` and how to call it as `(index, logs)`; None when `obj` has no such
    hook (or only Keras's no-op).

    Arguments go positionally, as many as the method takes, as `keras.callbacks.CallbackList` passes the index and
    most `logs` (so `LambdaCallback(on_train_batch_end=lambda batch, logs: ...)` works too); a keyword-only `logs`
    is passed by name. A plain object's parameter named `loss` gets the batch's own loss (as tutorials write
    `on_batch_end(self, batch_idx, loss, kwargs)`).
    """
    keras_obj = is_keras(obj)
    method = getattr(obj, hook, None)
    if hook in ("on_train_batch_begin", "on_train_batch_end"):
        legacy = getattr(obj, hook.replace("train_", ""), None)
        if (keras_obj and _is_default(method) and not _is_default(legacy)) or (not keras_obj and not callable(method)):
            method = legacy  # a Keras subclass's base class forwards to on_batch_*; a plain object may have only those
    if not callable(method) or _is_default(method):
        return None
    indexed = "batch" in hook or "epoch" in hook
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): pass everything
        params = [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    n_args = None if any(p.kind == p.VAR_POSITIONAL for p in params) else len(positional)
    logs_by_name = any(p.name == "logs" and p.kind == p.KEYWORD_ONLY for p in params)
    loss_at = positional.index("loss") if "loss" in positional and not keras_obj else None

    def call(i: int | None, logs: dict) -> None:
        args: list[Any] = [i] if indexed else []
        if loss_at is not None:
            args.insert(loss_at, batch_loss())
        if logs_by_name:
            method(*args[:n_args], logs=logs)
        else:
            method(*[*args, logs][:n_args])

    return (hook if keras_obj else getattr(method, "__name__", hook)), call


def attach(obj: Any, kind: str, value: Any) -> None:
    """`set_model`/`set_params` as Keras calls them; a plain object gets the attribute (Keras's base class sets it)."""
    setter = getattr(obj, f"set_{kind}", None)
    if callable(setter):
        setter(value)
    else:
        setattr(obj, kind, value)
