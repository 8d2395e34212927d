"""Built-in datasets (real data, no downloads): scikit-learn's digits, MNIST from a local .npz, image folders."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, MissingFileError, UserError
from .dataset import ArrayDataset, ImageFolder, image_folder_split
from .images import Augment
from .loader import DataLoaders
from .transforms import Normalize, ToFloat

image_folder = image_folder_split  # `(train_ds, valid_ds)` from a train/ + val/ tree, listed with the others
MNIST_FILE = "mnist.npz"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def cache_dir() -> Path:
    """Where data files are looked for last: `$XDG_CACHE_HOME/learnloop` (default `~/.cache/learnloop`)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "learnloop"


def digits(valid_pct: float = 0.2, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """scikit-learn's 1797 8x8 digits: x float32 `(1, 8, 8)` in [0, 1], y int64, split at random by `seed`."""
    from sklearn.datasets import load_digits  # sklearn is slow to import; only this function needs it

    if not 0 < valid_pct < 1:
        raise ValueError(f"valid_pct is the fraction of samples kept for validation, in (0, 1); got {valid_pct}.")
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16).unsqueeze(1)  # pixel values are 0..16
    y = torch.from_numpy(d.target).long()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    valid, train = perm.split([math.ceil(valid_pct * len(x)), len(x) - math.ceil(valid_pct * len(x))])
    return _scaled(ArrayDataset(x[train], y[train]), 16), _scaled(ArrayDataset(x[valid], y[valid]), 16)


def _scaled(ds: ArrayDataset, pixel_max: float) -> ArrayDataset:
    ds.pixel_max = pixel_max  # what its integers were divided by (see ArrayDataset.pixel_max)
    return ds


def find_file(name: str, path: str | Path | None = None) -> Path:
    """`path` if given, else `$LEARNLOOP_DATA/name`, else `cache_dir()/name`; else an error saying where to put it.

    `LEARNLOOP_DATA` is always a folder: the one that holds the data files (`mnist.npz`, ...)."""
    if path is not None:
        if Path(path).is_file():
            return Path(path)
        if Path(path).is_dir():
            raise MissingFileError(f"{str(path)!r} (passed as path=) is a folder: pass the {name} file itself, e.g. "
                                   f"{Path(path) / name}.")
        raise MissingFileError(f"{str(path)!r} (passed as path=) does not exist; pass the path of your {name}.")
    env = os.environ.get("LEARNLOOP_DATA")
    if env and Path(env).is_file():
        raise UserError(f"LEARNLOOP_DATA={env} names a file, but it is the folder holding the data files: set "
                        f"LEARNLOOP_DATA={Path(env).parent} (for {Path(env).parent / name}), or pass the file itself.")
    candidates = ([Path(env) / name] if env else []) + [cache_dir() / name]
    for p in candidates:
        if p.is_file():
            return p
    raise MissingFileError(
        f"{name} not found (looked in: {', '.join(map(str, candidates))}). There are no downloads: pass "
        f"path='/path/to/{name}', or set LEARNLOOP_DATA to the folder holding {name}, or copy the file to "
        f"{cache_dir() / name}.")


def check_sha256(path: Path, sha256: str) -> None:
    """ValueError unless the file's sha256 is `sha256`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != sha256.lower():
        raise DataError(f"{path} has sha256 {h.hexdigest()}, expected {sha256}; the file is corrupt or a different "
                         "file: copy it again, or pass the sha256 of the file you mean to use.")


def mnist(path: str | Path | None = None, sha256: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """MNIST from a local .npz (uint8 x_train, y_train, x_test, y_test): x float32 `(1, 28, 28)` in [0, 1], y int64."""
    file = find_file(MNIST_FILE, path)
    if sha256 is not None:
        check_sha256(file, sha256)
    try:
        with np.load(file) as d:
            missing = [k for k in MNIST_KEYS if k not in d]
            if missing:
                raise DataError(f"{file} lacks {missing}; an MNIST .npz holds {list(MNIST_KEYS)}, "
                                f"this one has {list(d.keys())}.")
            arrays = {k: torch.from_numpy(d[k]) for k in MNIST_KEYS}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # truncated, or not an .npz at all
        if isinstance(e, DataError):
            raise
        raise DataError(f"{file} can't be read as an .npz ({type(e).__name__}: {e}); it may be truncated (an "
                        f"interrupted copy or download): copy it again.") from None

    def to_ds(x: torch.Tensor, y: torch.Tensor) -> ArrayDataset:
        return _scaled(ArrayDataset(x.unsqueeze(1).float().div_(255), y.long()), 255)  # float: it trains as is

    return to_ds(arrays["x_train"], arrays["y_train"]), to_ds(arrays["x_test"], arrays["y_test"])


def image_stats(ds: ImageFolder, n: int = 256) -> Normalize:
    """Per-channel mean and std of `n` images spread evenly over `ds` (centre-cropped, never augmented), in [0, 1]."""
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)
    xb = torch.stack([torch.from_numpy(np.array(ds.image(i), np.uint8)) for i in idx.tolist()])
    xb = xb.reshape(*xb.shape[:3], -1).permute(0, 3, 1, 2)  # (N, C, H, W) also for grey images
    return Normalize.from_batch(ToFloat()(xb))


def image_folder_dls(root: str | Path, size: int | tuple[int, int] = 64, bs: int = 64,
                     augment: Augment | bool = True, n_workers: int = 0, seed: int | None = None,
                     mode: str = "RGB", stats: tuple[Any, Any] | None = None, decoder: str = "auto",
                     **kwargs: Any) -> DataLoaders:
    """Train and valid loaders over `root/train/<label>/` and `root/val/<label>/`, the fast way: workers send uint8
    batches, turned into floats and normalised once per batch here (`ToFloat`, `Normalize`).

    `augment`: True for `Augment()`'s defaults, an `Augment` for others, False for none; it applies to the train set
    (validation is always centre-cropped and resized). `stats`: per-channel (mean, std) in [0, 1]; by default
    measured on 256 training images. `kwargs` go to both `DataLoader`s (e.g. `prefetch`, `pin_memory`).
    """
    aug = Augment() if augment is True else augment or None
    train, valid = image_folder_split(root, size, mode, augment=aug, dtype=torch.uint8, decoder=decoder)
    plain = copy.copy(train)
    plain.augment = None
    norm = Normalize(*stats) if stats is not None else image_stats(plain)
    return DataLoaders.from_dsets(train, valid, bs=bs, n_workers=n_workers, seed=seed,
                                  batch_tfms=[ToFloat(), norm], **kwargs)
