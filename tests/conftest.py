"""Shared fixtures: real data (scikit-learn's bundled digits) and small models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def learnloop_cmd() -> list[str]:
    """The installed `learnloop` command (the console script beside this Python), else `python -m learnloop`."""
    script = Path(sys.executable).with_name("learnloop")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "learnloop"]


@pytest.fixture
def run_learnloop(learnloop_cmd, tmp_path):
    """Run the real `learnloop` command in a subprocess (cwd `tmp_path`, one torch thread); CompletedProcess."""

    def run(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        inherited = {k: v for k, v in os.environ.items() if k not in ("LEARNLOOP_DEBUG", "NO_COLOR")}
        environ = {**inherited, "OMP_NUM_THREADS": "1", **(env or {})}
        return subprocess.run([*learnloop_cmd, *map(str, args)], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=environ)

    return run


def write_photo_folder(root, n_per_class: int = 6, classes: str = "abc", size: tuple[int, int] = (96, 72),
                       n_valid: int = 2):
    """ROOT/train/<label>/*.jpg and ROOT/val/<label>/*.jpg: noisy JPEGs, each class tinted in its own channel,
    with a bright square at a random place; returns `root`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_per_class), ("val", n_valid)):
        for c, label in enumerate(classes):
            (root / split / label).mkdir(parents=True)
            for k in range(n):
                a = rng.integers(0, 120, (size[1], size[0], 3)).astype(np.uint8)
                a[..., c % 3] += 100
                y, x = rng.integers(0, size[1] - 20), rng.integers(0, size[0] - 20)
                a[y:y + 20, x:x + 20] = 250
                Image.fromarray(a).save(root / split / label / f"{k}.jpg", quality=90)
    return root


@pytest.fixture
def photo_folder(tmp_path):
    """A small JPEG image folder (3 tinted classes, 6 train and 2 valid images each) in tmp_path."""
    return write_photo_folder(tmp_path / "photos")


@pytest.fixture(scope="module")
def module_photo_folder(tmp_path_factory):
    """`write_photo_folder`'s folder, made once for a test module (for a run trained once and used by many tests)."""
    return write_photo_folder(tmp_path_factory.mktemp("module") / "photos")


@pytest.fixture
def make_photo_folder(tmp_path):
    """Factory: `write_photo_folder(tmp_path / name, **kwargs)`."""
    return lambda name="photos", **kwargs: write_photo_folder(tmp_path / name, **kwargs)
