"""Keras callbacks in the learnloop loop, called as `keras.Model.fit` calls them.

Real `keras.callbacks.Callback` subclasses, Keras's built-ins (EarlyStopping, ReduceLROnPlateau, CSVLogger, ...)
and plain objects with Keras-style `on_*` methods (seeds 000 and 002) all work. All the Keras-style callbacks of
a learner run as one `keras.callbacks.CallbackList` would: one `logs` dict per hook call, passed along them in
turn, with Keras's keys and running means. Their `self.model` is a `KerasModel` over the learner.

keras itself is never imported here: an object is a Keras callback only if keras is already imported.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..distributed import unwrap
from .core import Callback, CancelFitException, CancelTrainException, CancelValidateException
from .monitor import MAX_WORDS
from .progress import ProgressCallback
from .recorder import metric_value, batch_size, metric_name
from .training import TerminateOnNaN as NaNGuard

TRAIN_HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
               "on_train_end")  # fmt: skip
TEST_HOOKS = ("on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end")
PREDICT_HOOKS = ("on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end")
LEGACY_HOOKS = ("on_batch_begin", "on_batch_end")  # Keras's old names for on_train_batch_*; the seeds use them
KERAS_HOOKS = TRAIN_HOOKS + TEST_HOOKS + PREDICT_HOOKS + LEGACY_HOOKS

# Keras callbacks that write a Keras model's own file formats (or need TensorFlow) -> learnloop's equivalent.
_REFUSED = {
    "ModelCheckpoint": "learnloop.callbacks.SaveBest(path, monitor='valid_loss') to keep the best weights, or "
                       "Checkpoint(path) to save every epoch",
    "OrbaxCheckpoint": "learnloop.callbacks.Checkpoint(path)",
    "BackupAndRestore": "learnloop.callbacks.Checkpoint(path) and learn.fit(n, resume=path)",
    "TensorBoard": "learnloop.callbacks.TensorBoardCallback(log_dir)",
}  # fmt: skip


def _keras_class(name: str) -> type | None:
    """`keras.callbacks.<name>` if keras is imported (so a Keras object can exist), else None."""
    keras = sys.modules.get("keras")
    return getattr(getattr(keras, "callbacks", None), name, None)


def _is_keras(obj: Any, name: str = "Callback") -> bool:
    cls = _keras_class(name)
    return cls is not None and isinstance(obj, cls)


def _is_default(method: Any) -> bool:
    return getattr(method, "_is_default", False)  # Keras marks its base class's no-op hooks so


HookCall = Callable[[int | None, dict], None]  # (batch or epoch index, logs)


def _caller(obj: Any, hook: str, batch_loss: Callable[[], float]) -> tuple[str, HookCall] | None:
    """The method of `obj` that runs for `hook` and how to call it as `(index, logs)`; None when `obj` has no such
    hook (or only Keras's no-op)."""
    is_keras = _is_keras(obj)
    method = getattr(obj, hook, None)
    if hook in ("on_train_batch_begin", "on_train_batch_end"):
        legacy = getattr(obj, hook.replace("train_", ""), None)
        if is_keras and _is_default(method) and not _is_default(legacy):
            return hook, lambda i, logs: method(i, logs=logs)  # Keras's base class forwards it to on_batch_*
        if not is_keras and not callable(method):
            method = legacy
    if not callable(method) or _is_default(method):
        return None
    indexed = "batch" in hook or "epoch" in hook
    if is_keras:  # exactly as keras.callbacks.CallbackList calls it
        if "batch" in hook:
            return hook, lambda i, logs: method(i, logs=logs)
        return hook, (lambda i, logs: method(i, logs)) if indexed else (lambda i, logs: method(logs))
    # A plain object: (index, logs) positionally, as many as it takes; a parameter named `loss` gets the
    # batch's own loss (seed 000: `on_batch_end(self, batch_idx, loss, kwargs)`).
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): pass everything
        params = [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    n_args = None if any(p.kind == p.VAR_POSITIONAL for p in params) else len(positional)
    loss_at = positional.index("loss") if "loss" in positional else None

    def call(i: int | None, logs: dict) -> None:
        args = [i, logs] if indexed else [logs]
        if loss_at is not None:
            args.insert(loss_at, batch_loss())
        method(*args[:n_args])

    return getattr(method, "__name__", hook), call


def _attach(obj: Any, kind: str, value: Any) -> None:
    """`set_model`/`set_params` as Keras calls them; a plain object gets the attribute (Keras's base class sets it)."""
    setter = getattr(obj, f"set_{kind}", None)
    if callable(setter):
        setter(value)
    else:
        setattr(obj, kind, value)


class KerasOptimizer:
    """`self.model.optimizer` for Keras callbacks: `learning_rate` reads and writes the learner's `lr`."""

    def __init__(self, learn: Any):
        self._learn = learn

    @property
    def learning_rate(self) -> float:
        """The learner's lr (of its first param group)."""
        return float(self._learn.lr)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._learn.lr = float(value)  # a float, numpy or torch scalar, or a keras.Variable

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"learnloop's Keras optimizer has `learning_rate` only, no {name!r}; the torch "
                             f"optimizer is `learn.opt`.")


class _MetricDirection:
    """What Keras's MonitorCallback reads off a metric for mode='auto': its name and whether higher is better."""

    def __init__(self, name: str):
        self.name = name
        self._direction = "up" if any(word in name.lower() for word in MAX_WORDS) else "down"


class KerasModel:
    """`self.model` for Keras callbacks: the parts of a `keras.Model` that callbacks use, over a Learner.

    `stop_training` (the fit stops as Keras stops it: the epoch ends, with its validation, and no other begins),
    `optimizer.learning_rate` (the learner's lr), `get_weights()`/`set_weights()` (numpy arrays: the module's
    parameters, then its buffers), `predict(x)`, `metrics` and `history`. Any other attribute, and calling it,
    is the torch module's.
    """

    def __init__(self, learn: Any):
        self._learn = learn
        self.stop_training = self.stop_evaluating = self.stop_predicting = False
        self.optimizer = KerasOptimizer(learn)
        self.history = None  # keras.callbacks.History sets it

    @property
    def module(self) -> torch.nn.Module:
        """The torch module being trained."""
        return unwrap(self._learn.model)

    def _tensors(self) -> list[torch.Tensor]:
        return [*self.module.parameters(), *self.module.buffers()]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters, then the buffers, as numpy arrays."""
        return [t.detach().cpu().numpy().copy() for t in self._tensors()]

    def set_weights(self, weights: list[Any]) -> None:
        """Load arrays shaped and ordered as `get_weights()` returns them."""
        tensors = self._tensors()
        if len(weights) != len(tensors):
            raise ValueError(f"set_weights got {len(weights)} arrays; the model has {len(tensors)} (its parameters, "
                             f"then its buffers): pass a list as get_weights() returns it.")
        new = [torch.as_tensor(np.asarray(w)) for w in weights]
        for i, (t, w) in enumerate(zip(tensors, new)):  # check them all before changing any
            if w.shape != t.shape:
                raise ValueError(f"set_weights: array {i} has shape {tuple(w.shape)}, the model's tensor {i} has "
                                 f"{tuple(t.shape)}: pass a list as get_weights() returns it.")
        with torch.no_grad():
            for t, w in zip(tensors, new):
                t.copy_(w)

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = 0) -> np.ndarray:
        """The module's outputs for the samples `x` (numpy or tensor, batch first), in eval mode, as numpy.
        (`verbose` is taken, as Keras's `predict` takes it, and ignored: nothing is printed.)"""
        module, device = self.module, self._learn.device
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                outs = [module(xb.to(device)) for xb in torch.as_tensor(np.asarray(x)).split(batch_size)]
        finally:
            module.train(was_training)
        return torch.cat(outs).cpu().numpy()

    @property
    def metrics(self) -> list:
        """The learner's metrics as Keras's EarlyStopping/ReduceLROnPlateau read them for mode='auto'."""
        try:
            from keras.src.trainers.compile_utils import MetricsList  # only reached from Keras's own callbacks
        except ImportError:  # no keras (or another layout): those callbacks then ask for mode='min' or 'max'
            return []
        return [MetricsList([_MetricDirection(metric_name(m)) for m in self._learn.metrics])]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._learn.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        learn = self.__dict__.get("_learn")
        if learn is None or name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(unwrap(learn.model), name)
        except AttributeError:
            raise AttributeError(
                f"{name!r} is neither on learnloop's Keras model (stop_training, optimizer.learning_rate, "
                f"get_weights, set_weights, predict, metrics, history) nor on the torch module "
                f"{type(unwrap(learn.model)).__name__}."
            ) from None


class _RunningMeans:
    """Per phase, the loss and each metric averaged over the samples so far, as Keras's metric trackers do.

    The sums stay on the device; they are read (one sync) only when a callback is handed the logs.
    """

    def __init__(self, names: list[str]):
        self.names = ["loss", *names]
        self.reset()

    def reset(self) -> None:
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, values: list[torch.Tensor], n: int) -> None:
        batch = torch.stack([v.detach().float() for v in values]) * n
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += n

    def logs(self) -> dict[str, float]:
        """`{name: mean so far}`, keys sorted as Keras sorts them; empty before the first batch."""
        if not self.count:
            return {}
        return dict(sorted(zip(self.names, (self.sums / self.count).tolist())))


class KerasCallback(Callback):
    """Runs a Keras callback (or a plain object with Keras-style `on_*` methods) inside the learnloop loop.

    Hooks fire as in `keras.Model.fit`: `on_train_begin/end`, `on_epoch_begin/end(epoch, logs)`,
    `on_train_batch_begin/end(batch, logs)` (or, for a plain object without them, `on_batch_begin/end`),
    `on_test_*` around validation (also from `learn.validate`) and `on_predict_*` from `learn.get_preds`.
    `logs` holds `loss` and each metric by name (running means over the epoch so far at batch level),
    then `val_loss` and `val_<metric>` at epoch end. Epochs and batches count from 0. Setting
    `self.model.stop_training = True` ends the training batches of the epoch; validation and `on_epoch_end`
    still run, then the fit stops. A Keras `TerminateOnNaN` takes over from learnloop's own NaN guard.
    """

    order = 70
    during_lr_find = False  # Keras callbacks log and stop training; Keras has no lr finder for them to expect
    _put_back_guards: Callable[[], None] | None = None  # set while a Keras TerminateOnNaN stands in for ours

    def __init__(self, obj: Any):
        for name, instead in _REFUSED.items():
            if _is_keras(obj, name):
                raise TypeError(f"keras.callbacks.{name} needs a Keras model's own file formats, which a learnloop "
                                f"Learner does not write; use {instead} instead.")
        self.obj = obj
        self.keras_model: KerasModel | None = None
        self._hooks: dict[str, list[tuple[Any, tuple[str, HookCall]]]] | None = None  # set while this one leads

    @property
    def name(self) -> str:
        """Named after the wrapped object's class."""
        return "keras_" + type(self.obj).__name__.lower()

    # -- one CallbackList per learner ------------------------------------------------------------
    def _lead(self, params: dict) -> bool:
        """At the start of a run: the first Keras callback of the learner dispatches for all of them."""
        peers = [cb for cb in self.learn.cbs if isinstance(cb, KerasCallback) and cb.order == self.order]
        if peers[0] is not self:
            self._hooks = None
            return False
        self._objs = objs = [cb.obj for cb in peers]
        self.keras_model = KerasModel(self.learn)
        for obj in objs:  # as keras.callbacks.CallbackList does: the model, then the params
            _attach(obj, "model", self.keras_model)
            _attach(obj, "params", params)
        self._hooks = {}
        for hook in TRAIN_HOOKS + TEST_HOOKS + PREDICT_HOOKS:
            calls = [(obj, call) for obj in objs if (call := _caller(obj, hook, self._batch_loss)) is not None]
            if calls:
                self._hooks[hook] = calls
        self._means = _RunningMeans([metric_name(m) for m in self.learn.metrics])
        self._train_logs: dict[str, float] = {}
        self._val_logs: dict[str, float] = {}
        self._epoch_logs: dict[str, float] = {}
        self._nested, self._validation_next = 0, False
        return True

    def _batch_loss(self) -> float:
        return self.learn.loss.item()

    def _fire(self, hook: str, index: int | None = None, logs: dict | None = None) -> None:
        logs = {} if logs is None else logs  # one dict, passed along: a key one callback adds reaches the next
        for obj, (name, call) in self._hooks.get(hook, ()):
            try:
                call(index, logs)
            except Exception as e:
                if hasattr(e, "add_note"):  # Python 3.11+
                    e.add_note(f"raised in the Keras callback {type(obj).__name__}.{name}")
                raise

    def _params(self, steps: int, epochs: int = 1) -> dict:
        progress = any(isinstance(cb, ProgressCallback) for cb in self.learn.cbs)
        return {"verbose": int(progress), "epochs": epochs, "steps": steps}

    def _active(self) -> bool:
        """This callback leads its peers, and the loop is not in a validation run from inside the fit."""
        return self._hooks is not None and not self._nested

    # -- fit ---------------------------------------------------------------------------------------
    def before_fit(self):
        if not self._lead(self._params(len(self.dls.train), self.n_epoch)):
            return
        self.keras_model.stop_training = False
        # Keras's TerminateOnNaN stops as Keras does (after the epoch); learnloop's guard would cancel first.
        guards = [cb for cb in self.learn.cbs if isinstance(cb, NaNGuard)]
        if guards and any(_is_keras(obj, "TerminateOnNaN") for obj in self._objs):
            self._put_back_guards = self.learn.remove_cbs(guards)
        self._fire("on_train_begin")

    def before_epoch(self):
        if self._active():
            self._train_logs, self._val_logs = {}, {}
            self._fire("on_epoch_begin", self.epoch)

    def before_train(self):
        if self._active():
            self._means.reset()
            self._validation_next = False

    def after_train(self):
        if self._active():
            self._train_logs = self._means.logs()
            self._validation_next = True

    def after_epoch(self):
        if not self._active():
            return
        self._epoch_logs = dict(sorted({**self._train_logs, **self._val_logs}.items()))
        self._fire("on_epoch_end", self.epoch, dict(self._epoch_logs))
        if self.keras_model.stop_training:
            raise CancelFitException()

    def after_fit(self):
        if self._hooks is None:
            return
        if self._put_back_guards is not None:
            self._put_back_guards()
            self._put_back_guards = None
        if self.learn.error is None:  # Keras skips on_train_end when the fit raised
            self._fire("on_train_end", logs=dict(self._epoch_logs))
        self._hooks = None

    # -- validation (in a fit, or learn.validate) and prediction (learn.get_preds) ------------------
    def before_validate(self):
        learn = self.learn
        if learn.fitting:
            if self._hooks is None:
                return
            if not self._validation_next:  # learn.validate called by a callback inside the fit: not Keras's
                self._nested += 1
                return
            self._validation_next = False
        elif not self._lead(self._params(len(learn.dl))):
            return
        self._means.reset()
        self.keras_model.stop_evaluating = self.keras_model.stop_predicting = False
        self._fire("on_predict_begin" if learn.predicting else "on_test_begin")

    def after_validate(self):
        if self._hooks is None:
            return
        if self._nested:
            self._nested -= 1
            return
        if self.learn.predicting:
            self._fire("on_predict_end")
        else:
            logs = self._means.logs()
            self._val_logs = {f"val_{k}": v for k, v in logs.items()}
            self._fire("on_test_end", logs=logs)
        if not self.learn.fitting:
            self._hooks = None

    # -- batches -------------------------------------------------------------------------------------
    def _stage(self) -> str:
        return "train" if self.learn.training else "predict" if self.learn.predicting else "test"

    def before_batch(self):
        if self._active():
            self._fire(f"on_{self._stage()}_batch_begin", self.iter)

    def after_loss(self):
        learn = self.learn
        if not self._active() or learn.predicting:
            return
        with torch.no_grad():
            metrics = [metric_value(m, learn.preds, learn.yb) for m in learn.metrics]
        self._means.add([learn.loss, *metrics], batch_size(learn.yb))

    def after_batch(self):
        if not self._active():
            return
        stage, model = self._stage(), self.keras_model
        hook = f"on_{stage}_batch_end"
        if hook in self._hooks:
            logs = {"outputs": self.learn.preds.detach().cpu().numpy()} if stage == "predict" else self._means.logs()
            self._fire(hook, self.iter, logs)
        if stage == "train" and model.stop_training:
            raise CancelTrainException()  # Keras ends the epoch's training here; validation still runs
        if (stage == "test" and model.stop_evaluating) or (stage == "predict" and model.stop_predicting):
            raise CancelValidateException()


def as_callback(obj: Any) -> Callback:
    """`obj` if it is a `Callback`; a Keras-style object (`on_epoch_end`, ...) wrapped in `KerasCallback`."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, type):
        raise TypeError(f"Got the class {obj.__name__}, not an instance: pass {obj.__name__}().")
    if any(callable(getattr(obj, hook, None)) for hook in KERAS_HOOKS):
        return KerasCallback(obj)
    raise TypeError(
        f"{obj!r} is not a callback: subclass learnloop.Callback and define event methods (before_fit, "
        f"after_batch, ...), or give it Keras-style methods (on_train_begin, on_epoch_end, on_batch_end, ...)."
    )
