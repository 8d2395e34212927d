"""Seed 002 ("TensorFlow에서 커스텀 콜백"): a Keras custom callback, unchanged, in `learnloop.fit`.

    python examples/keras_style_callbacks.py                 # digits, a few seconds on a CPU

The seed's `CustomCallback` keeps its exact Keras signatures (`on_epoch_end(self, epoch, logs=None)`, ...);
learnloop wraps any object with `on_*` methods and calls them as Keras does. (A real `keras.callbacks.Callback`
subclass, or Keras's own EarlyStopping, CSVLogger, ..., works the same way when keras is installed.) The seed's
`model.fit(x_train, y_train, epochs=10, callbacks=[custom_callback])` becomes
`learnloop.fit(model, x_train, y_train, epochs=10, callbacks=[custom_callback])` on numpy arrays.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
from torch import nn

import learnloop
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy
from learnloop.optim import AdamW


class CustomCallback:
    """The seed's callback, no learnloop base class needed. As in Keras, `logs` holds `loss` and `accuracy`
    (and `val_loss`, `val_accuracy` at epoch end); epochs and batches count from 0."""

    def __init__(self, stop_at: float | None = None) -> None:
        self.stop_at = stop_at  # stop once val_accuracy reaches this, the Keras way

    def on_epoch_end(self, epoch, logs=None):
        # called at the end of every epoch
        print(f"epoch {epoch + 1}: {self.n_batches} batches (mean loss after the last one {self.last_loss:.4f}), "
              f"loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}, "
              f"val_loss {logs['val_loss']:.4f}, val_accuracy {logs['val_accuracy']:.4f}")
        if self.stop_at is not None and logs["val_accuracy"] >= self.stop_at:
            print(f"val_accuracy reached {self.stop_at}: setting model.stop_training")
            self.model.stop_training = True  # learnloop sets `self.model` before on_train_begin, as Keras does

    def on_train_begin(self, logs=None):
        # called once, before the first epoch
        self.start = time.perf_counter()
        print(f"training starts at lr {self.model.optimizer.learning_rate}")

    def on_train_end(self, logs=None):
        # called once, after the last epoch
        print(f"training took {time.perf_counter() - self.start:.1f}s; "
              f"final val_accuracy {logs['val_accuracy']:.4f}")

    def on_batch_begin(self, batch, logs=None):
        # called before every training batch; batch counts from 0 in each epoch
        if batch == 0:
            self.n_batches = 0

    def on_batch_end(self, batch, logs=None):
        # called after every training batch; logs["loss"] is the mean loss of the epoch so far
        self.n_batches += 1
        self.last_loss = logs["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's lr (Keras's default)")
    parser.add_argument("--stop-at", type=float, default=None, help="stop when val_accuracy reaches this")
    args = parser.parse_args()

    # numpy arrays, as Keras takes them: flattened 8x8 digits
    train_ds, valid_ds = digits()
    x_train, y_train = train_ds.x.flatten(1).numpy(), train_ds.y.numpy()
    x_valid, y_valid = valid_ds.x.flatten(1).numpy(), valid_ds.y.numpy()
    print(f"x_train {x_train.shape} {x_train.dtype}, y_train {y_train.shape} {y_train.dtype}, "
          f"classes {np.unique(y_train).tolist()}")

    # the seed's Dense(64, relu) -> Dense(10, softmax); the softmax lives in the cross-entropy loss
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    custom_callback = CustomCallback(stop_at=args.stop_at)
    # compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy']) -> keyword arguments
    learnloop.fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=(x_valid, y_valid), callbacks=[custom_callback],
                  opt_func=partial(AdamW, wd=0.0), lr=args.lr, metrics=[accuracy], progress=False, seed=0)


if __name__ == "__main__":
    main()
