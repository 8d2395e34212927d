"""Seed 003 with learnloop: print train and valid loss per epoch and write TensorBoard scalars to runs/.

    python examples/monitoring.py                 # well under a minute on a CPU
    tensorboard --logdir runs                     # then open http://localhost:6006

The seed's loop (model.train(), batches, print, model.eval(), validate, print, writer.add_scalar) is the
Learner's loop; the prints are a five-line callback and the SummaryWriter is `TensorBoardCallback`.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from learnloop import Callback, Learner
from learnloop.callbacks import CSVLogger, TensorBoardCallback
from learnloop.metrics import accuracy


class DigitsLoaders:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) floats in [0, 1]: a fixed 80/20 train/valid split.

    Stand-in until learnloop.data lands; then replace this class and the `DigitsLoaders(...)` call with
    `from learnloop.data.datasets import digits` and `dls = digits(bs=args.bs)`.
    """

    def __init__(self, bs: int = 64, seed: int = 0):
        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16
        y = torch.tensor(data.target, dtype=torch.int64)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        valid, train = order[: len(x) // 5], order[len(x) // 5 :]
        gen = torch.Generator().manual_seed(seed)
        self.train = DataLoader(TensorDataset(x[train], y[train]), batch_size=bs, shuffle=True, generator=gen)
        self.valid = DataLoader(TensorDataset(x[valid], y[valid]), batch_size=bs * 2)


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
    dls = DigitsLoaders(bs=args.bs)
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
