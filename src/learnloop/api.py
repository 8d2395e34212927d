"""`learnloop.fit(model, x, y, ...)`: Keras's `model.fit(x_train, y_train, ...)` in one call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .data import ArrayDataset, DataLoader, DataLoaders
from .learner import Learner
from .nn.functional import cross_entropy
from .optim import SGD


def fit(
    model: Any,
    x: Any,
    y: Any,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    callbacks: Iterable | None = None,
    loss: Callable = cross_entropy,
    lr: float = 1e-2,
    opt_func: Callable = SGD,
    metrics: Iterable[Callable] | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
) -> Learner:
    """Train `model` on arrays `x`, `y` (numpy or tensors) for `epochs`; returns the Learner.

    As in Keras, `callbacks` run for this fit only: a later `learn.validate()` or `learn.fit()` runs without them.
    """
    train = DataLoader(ArrayDataset(x, y), bs=batch_size, shuffle=shuffle, seed=seed)
    valid = DataLoader(ArrayDataset(*validation_data), bs=batch_size) if validation_data is not None else None
    dls = DataLoaders(train, valid)
    learn = Learner(model, dls, loss_func=loss, lr=lr, opt_func=opt_func, metrics=metrics, progress=progress)
    learn.fit(epochs, cbs=callbacks)
    return learn
