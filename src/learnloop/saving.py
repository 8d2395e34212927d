"""Atomic, safe checkpoint files: written whole or not at all, read without running code."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .distributed import is_main


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write `obj` with `torch.save` to a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with `torch.load(weights_only=True)`: tensors and plain containers, never code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: check the path, or train first to write one.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f"Refused to load {path}: it holds objects other than tensors and plain containers, and "
            f"unpickling them could run code. Only load checkpoints you trust; learnloop writes plain "
            f"dicts of state_dicts. ({e})"
        ) from None


def save_weights(model: Any, opt: Any, path: str | os.PathLike) -> Path:
    """`{"model": ..., "opt": ...}` state dicts to `path`, atomically (no "opt" when `opt` is None); rank 0 alone writes."""
    if not is_main():
        return Path(path)
    state = {"model": model.state_dict()}
    if opt is not None:
        state["opt"] = opt.state_dict()
    return atomic_save(state, path)


def load_weights(model: Any, opt: Any, path: str | os.PathLike) -> None:
    """Load what `save_weights` wrote into `model` (and `opt`, when given and saved)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    if opt is not None and "opt" in state:
        opt.load_state_dict(state["opt"])
