"""`KerasCallback`: Keras callbacks run as one `keras.callbacks.CallbackList` would, inside the learnloop loop.

One `logs` dict per hook call, passed along the learner's Keras-style callbacks in turn, with Keras's keys and
running means; their `self.model` is a `KerasModel` over the learner.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import Callback, CancelFitException, CancelTrainException, CancelValidateException
from ..progress import ProgressCallback
from ..recorder import GatherPreds, batch_size, metric_name, metric_value
from ..training import TerminateOnNaN
from .hooks import PREDICT_HOOKS, REFUSED, TEST_HOOKS, TRAIN_HOOKS, HookCall, attach, caller, has_keras_hooks, is_keras
from .model import KerasModel


class RunningMeans:
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
    still run, then the fit stops. A validation run that gathers predictions (`learn.get_preds`: a `GatherPreds`
    among the callbacks) is Keras's `predict`. A Keras `TerminateOnNaN` takes over from learnloop's own NaN guard
    (`TerminateOnNaN.active` is False for that fit).
    """

    order = 70
    during_lr_find = False  # Keras callbacks log and stop training; Keras has no lr finder for them to expect

    def __init__(self, obj: Any):
        for name, instead in REFUSED.items():
            if is_keras(obj, name):
                raise TypeError(f"keras.callbacks.{name} needs a Keras model's own file formats, which a learnloop "
                                f"Learner does not write; use {instead} instead.")
        self.obj = obj
        self.keras_model: KerasModel | None = None
        self._hooks: dict[str, list[tuple[Any, tuple[str, HookCall]]]] | None = None  # set while this one leads
        self._in_fit = self._predicting = False
        self._paused_guards: list[TerminateOnNaN] = []  # ours, while a Keras TerminateOnNaN stands in for them

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
            attach(obj, "model", self.keras_model)
            attach(obj, "params", params)
        self._hooks = {}
        for hook in TRAIN_HOOKS + TEST_HOOKS + PREDICT_HOOKS:
            calls = [(obj, call) for obj in objs if (call := caller(obj, hook, self._batch_loss)) is not None]
            if calls:
                self._hooks[hook] = calls
        self._means = RunningMeans([metric_name(m) for m in self.learn.metrics])
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
        self._in_fit, self._predicting = True, False
        if not self._lead(self._params(len(self.dls.train), self.n_epoch)):
            return
        self.keras_model.stop_training = False
        # Keras's TerminateOnNaN stops as Keras does (after the epoch); learnloop's guard would cancel first.
        if any(is_keras(obj, "TerminateOnNaN") for obj in self._objs):
            self._paused_guards = [cb for cb in self.learn.cbs if isinstance(cb, TerminateOnNaN) and cb.active]
            for guard in self._paused_guards:
                guard.active = False
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
        self._in_fit = False
        if self._hooks is None:
            return
        for guard in self._paused_guards:
            guard.active = True
        self._paused_guards = []
        if self.learn.error is None:  # Keras skips on_train_end when the fit raised
            self._fire("on_train_end", logs=dict(self._epoch_logs))
        self._hooks = None

    # -- validation (in a fit, or learn.validate) and prediction (learn.get_preds) ------------------
    def before_validate(self):
        learn = self.learn
        if self._in_fit:
            if self._hooks is None:
                return
            if not self._validation_next:  # learn.validate called by a callback inside the fit: not Keras's
                self._nested += 1
                return
            self._validation_next = False
        elif not self._lead(self._params(len(learn.dl))):
            return
        else:
            self._predicting = any(isinstance(cb, GatherPreds) for cb in learn.cbs)
        self._means.reset()
        self.keras_model.stop_evaluating = self.keras_model.stop_predicting = False
        self._fire("on_predict_begin" if self._predicting else "on_test_begin")

    def after_validate(self):
        if self._hooks is None:
            return
        if self._nested:
            self._nested -= 1
            return
        if self._predicting:
            self._fire("on_predict_end")
        else:
            logs = self._means.logs()
            self._val_logs = {f"val_{k}": v for k, v in logs.items()}
            self._fire("on_test_end", logs=logs)
        if not self._in_fit:
            self._hooks = None
            self._predicting = False

    # -- batches -------------------------------------------------------------------------------------
    def _stage(self) -> str:
        return "train" if self.learn.training else "predict" if self._predicting else "test"

    def before_batch(self):
        if self._active():
            self._fire(f"on_{self._stage()}_batch_begin", self.iter)

    def after_loss(self):
        learn = self.learn
        if not self._active() or self._predicting:
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


def wrap_keras(obj: Any) -> KerasCallback | None:
    """The adapter `learnloop.callbacks` registers: a Keras-style object (`on_epoch_end`, ...) in a `KerasCallback`,
    anything else None."""
    return KerasCallback(obj) if has_keras_hooks(obj) else None
