"""Seed 003 with learnloop: print train and valid loss per epoch and write TensorBoard scalars to runs/.

    python examples/monitoring.py                 # well under a minute on a CPU
    tensorboard --logdir runs                     # then open http://localhost:6006

The seed's loop (model.train(), batches, print, model.eval(), validate, print, writer.add_scalar) is the
Learner's loop; the prints are a five-line callback and the SummaryWriter is `TensorBoardCallback`.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from learnloop import Callback, Learner
from learnloop.callbacks import CSVLogger, TensorBoardCallback
from learnloop.data import DataLoaders
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy


class MyModel(nn.Module):
    """The seed's `MyModel`: a small CNN for 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PrintLosses(Callback):
    """The seed's two lines per epoch: training loss, then validation loss."""

    order = 70  # after the Recorder (50) has written this epoch's row to learn.history

    def after_epoch(self):
        row, where = self.history[-1], f"Epoch [{self.epoch + 1}/{self.n_epoch}]"
        print(f"{where}, Training Loss: {row['train_loss']:.4f}")
        print(f"{where}, Validation Loss: {row['valid_loss']:.4f}, Accuracy: {row['valid_accuracy']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--logdir", default="runs", help="TensorBoard log directory (default: runs)")
    parser.add_argument("--csv", default=None, help="also write one row per epoch to this CSV file")
    parser.add_argument("--plot", default=None, help="save the loss curves to this PNG after training")
    args = parser.parse_args()

    torch.manual_seed(0)
    # scikit-learn's 8x8 digits, (1, 8, 8) floats in [0, 1], split 80/20; the train loader reshuffles each epoch
    dls = DataLoaders.from_dsets(*digits(), bs=args.bs, seed=0)
    cbs = [PrintLosses(), TensorBoardCallback(args.logdir)] + ([CSVLogger(args.csv)] if args.csv else [])
    learn = Learner(MyModel(), dls, loss_func=nn.functional.cross_entropy, lr=args.lr, metrics=[accuracy],
                    cbs=cbs, progress=False)  # fmt: skip
    learn.fit(args.epochs)
    if args.plot:
        learn.recorder.plot_loss(args.plot)
        print(f"Loss curves: {args.plot}")
    print(f"TensorBoard scalars in {args.logdir}/: view them with  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
