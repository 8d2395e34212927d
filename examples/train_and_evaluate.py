"""Seed 001 ("PyTorch에서 모델을 학습시키는 방법"): torch Dataset + CNN, trained by a Learner, then tested.

    python examples/train_and_evaluate.py                     # digits, a few seconds on a CPU

Everything the seed writes by hand stays plain torch: a `torch.utils.data.Dataset` subclass, an `nn.Module` CNN,
`nn.CrossEntropyLoss()`, `optim.SGD` and torch `DataLoader`s. The seed's training loop is `learn.fit`, its
per-epoch loss print a callback, and its evaluation loop `learn.validate(test_dl)` / `learn.get_preds(test_dl)`.
Like the seed, training sees only the train loader (no validation phase); the test set is held out until the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset

from learnloop import Callback, Learner
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy


class CustomDataset(Dataset):
    """The seed's dataset: `data` and `targets` tensors, one sample per index."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor) -> None:
        self.data = data  # (N, 1, 8, 8) float images
        self.targets = targets  # (N,) int64 labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[idx], self.targets[idx]


class CNN(nn.Module):
    """The seed's conv -> ReLU -> linear; the seed forgets to flatten before `fc`, this does not."""

    def __init__(self, in_channels: int = 1, out_channels: int = 16, kernel_size: int = 3,
                 image_size: int = 8, out_features: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(out_channels * image_size * image_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.relu(x)
        x = self.fc(x.flatten(1))
        return x


class PrintEpochLoss(Callback):
    """The seed's `print(f"Epoch {epoch + 1} Loss: ...")`, with the mean loss per sample over the epoch."""

    order = 70  # after the Recorder (50) has appended the epoch's row to learn.history

    def after_epoch(self):
        print(f"Epoch {self.epoch + 1} Loss: {self.history[-1]['train_loss']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05, help="the seed uses 0.01; digits trains faster at 0.05")
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/train_and_evaluate"), help="where the weights go")
    args = parser.parse_args()

    train_ds, test_ds = digits()  # 1437 training and 360 test images, split at random once
    torch.manual_seed(0)
    dataset = CustomDataset(train_ds.x, train_ds.y)
    dataloader = DataLoader(dataset, batch_size=args.bs, shuffle=True)
    test_dataloader = DataLoader(CustomDataset(test_ds.x, test_ds.y), batch_size=256)

    model = CNN()
    criterion = nn.CrossEntropyLoss()
    # a single loader as `dls`: train only, as the seed's loop does; opt_func gets (params, lr=...)
    learn = Learner(model, dataloader, loss_func=criterion, lr=args.lr, opt_func=optim.SGD,
                    metrics=[accuracy], cbs=[PrintEpochLoss()], progress=False)
    learn.fit(args.epochs)

    # the seed's evaluation loop, on the model's test-set outputs
    preds, targets = learn.get_preds(test_dataloader)
    _, predicted = torch.max(preds, 1)
    correct, total = (predicted == targets).sum().item(), targets.size(0)
    print(f"Accuracy: {correct / total} ({correct}/{total} test images)")
    # the same in one call: loss and every metric over any loader
    print(f"learn.validate(test_dataloader): {learn.validate(test_dataloader)}")

    x, y = test_ds[0]
    print(f"learn.predict on one test image: predicted {learn.predict(x)[1]}, true {y.item()}")
    print(f"weights saved to {learn.save(args.out / 'model.pth')}")


if __name__ == "__main__":
    main()
