"""Seed 000 ("PyTorch Callbacks 및 학습률 스케줄링"): the seed's MyCallback and StepLR(step_size=3, gamma=0.1).

    python examples/callbacks_and_schedulers.py               # digits, 7 epochs, a few seconds on a CPU

The seed's `MyCallback` keeps its exact signatures (`on_batch_end(self, batch_idx, loss, kwargs)`, ...): learnloop
calls them as Keras calls its callbacks, `(index, logs)`, and a parameter named `loss` gets the batch's loss. The seed's `trainer = MyTrainer(model, callback); trainer.fit(data_loader)` is a
`Learner`, and its hand-stepped `lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)` is a `TorchScheduler`,
stepped after every epoch: the lr is 0.1 for epochs 1-3, 0.01 for 4-6, then 0.001.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR

from learnloop import Learner
from learnloop.callbacks import TorchScheduler
from learnloop.data import DataLoaders
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy


class MyCallback:
    """The seed's callback (the seed's `nn.Callback` base does not exist in torch; none is needed).

    `kwargs` is the Keras logs dict (at the end `loss`, `accuracy`, `val_loss`, `val_accuracy`), `self.model`
    a Keras-like view of the model (`self.model.optimizer.learning_rate` is the lr); epochs and batches count from 0.
    """

    def __init__(self, log_every: int = 30) -> None:
        self.log_every = log_every

    def on_train_begin(self, kwargs):
        # called before training starts
        print(f"training starts, lr {self.model.optimizer.learning_rate}")

    def on_epoch_begin(self, epoch, kwargs):
        # called at the start of each epoch: the lr StepLR chose for it
        print(f"epoch {epoch + 1}: lr {self.model.optimizer.learning_rate:.4g}")

    def on_batch_end(self, batch_idx, loss, kwargs):
        # called after each training batch with that batch's loss
        if batch_idx % self.log_every == 0:
            print(f"  batch {batch_idx:3d}: loss {loss:.4f}")

    def on_train_end(self, kwargs):
        # called after training ends
        print(f"training ends: loss {kwargs['loss']:.4f}, val_loss {kwargs['val_loss']:.4f}, "
              f"val_accuracy {kwargs['val_accuracy']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--bs", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    dls = DataLoaders.from_dsets(*digits(), bs=args.bs, seed=0)
    # the seed's optim.SGD(model.parameters(), lr=0.1): any torch optimizer class works as opt_func
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))  # the seed's MyModel
    learn = Learner(model, dls, loss_func=nn.functional.cross_entropy, lr=args.lr, opt_func=optim.SGD,
                    metrics=[accuracy], cbs=[MyCallback()], progress=False)
    # the scheduler needs the optimizer, which the Learner builds: pass a factory, not a scheduler
    learn.fit(args.epochs, cbs=[TorchScheduler(partial(StepLR, step_size=3, gamma=0.1))])

    print("per-epoch lr:", [f"{row['lr']:.4g}" for row in learn.history])
    print(f"valid accuracy: {learn.history[-1]['valid_accuracy']:.4f}")


if __name__ == "__main__":
    main()
