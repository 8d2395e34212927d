"""`learnloop.fit(model, x, y, ...)`: Keras's `model.fit(x_train, y_train, ...)` in one call; `load_learner(path)`: a
trained model back from its model file, ready to predict."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .data import ArrayDataset, DataLoader, DataLoaders
from .learner import Learner
from .metrics import accuracy
from .model_file import build_model, input_pipeline, read_model_file
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


def load_learner(path: str | os.PathLike, model: Any = None, device: Any = None) -> Learner:
    """A Learner for inference from a model file (or a run folder holding model.pt), without the training data:
    `learn.predict(item)`, `learn.dls.test_dl(items)`, `learn.get_preds(dl)`, `learn.validate(dl)`.

    `model`: your own model of the same architecture, for a file that can't rebuild it (one not made by learnloop's
    architectures); the file's weights are loaded into it. Nothing in the file runs code (`weights_only=True`)."""
    record = read_model_file(path)
    model = build_model(record, model)
    dls = DataLoaders(None, None, pipeline=input_pipeline(record), vocab=record["classes"])
    learn = Learner(model, dls, metrics=[accuracy], progress=False, device=device)
    learn.model.eval()
    return learn
