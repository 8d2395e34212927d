"""`self.model` for Keras callbacks: the parts of a `keras.Model` they use, over a learnloop Learner."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...distributed import unwrap
from ..monitor import MAX_WORDS
from ..recorder import metric_name


class KerasOptimizer:
    """`self.model.optimizer` for Keras callbacks: `learning_rate` reads and writes the learner's `lr`."""

    def __init__(self, learn: Any):
        self._learn = learn

    @property
    def learning_rate(self) -> float:
        """The learner's lr (of its last param group, the head)."""
        return float(self._learn.lr)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._learn.lr = float(value)  # a float, numpy or torch scalar, or a keras.Variable

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"learnloop's Keras optimizer has `learning_rate` only, no {name!r}; the torch "
                             f"optimizer is `learn.opt`.")


class MetricDirection:
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
        return [MetricsList([MetricDirection(metric_name(m)) for m in self._learn.metrics])]

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
