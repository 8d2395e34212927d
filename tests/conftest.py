"""Shared fixtures: real data (scikit-learn's bundled digits) and small models."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

# Small models train fastest on one thread, and subprocess tests (workers, DDP ranks) then do not
# fight this process for the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits as float32 (N, 1, 8, 8) in [0, 1] and int64 labels: a fixed 80/20 train/valid split."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_valid = len(x) // 5
    valid, train = order[:n_valid], order[n_valid:]
    return x[train], y[train], x[valid], y[valid]


class _DLs:
    def __init__(self, train, valid):
        self.train, self.valid = train, valid


@pytest.fixture
def make_dls(digits_tensors):
    """Factory: digits train/valid loaders with batch size `bs` (train shuffled with `seed`)."""
    from torch.utils.data import DataLoader, TensorDataset

    def make(bs: int = 32, seed: int = 0):
        xt, yt, xv, yv = digits_tensors
        gen = torch.Generator().manual_seed(seed)
        train = DataLoader(TensorDataset(xt, yt), batch_size=bs, shuffle=True, generator=gen)
        return _DLs(train, DataLoader(TensorDataset(xv, yv), batch_size=bs * 2))

    return make


def mlp(seed: int = 0) -> torch.nn.Module:
    """A small MLP for 8x8 digits, initialised from `seed`."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )


@pytest.fixture
def make_mlp():
    """Factory for `mlp(seed)`."""
    return mlp
