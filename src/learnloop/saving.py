"""Atomic, safe checkpoint files: written whole or not at all, read without running code."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .distributed import is_main
from .errors import CheckpointError, MissingFileError, UnsafeCheckpointError


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write `obj` with `torch.save` to a temp file beside `path`, fsync it, then rename it over `path`."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call `write(f)` on a temp file beside `path`, fsync it, then rename it over `path`: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint dict with `torch.load(weights_only=True)`: tensors and plain containers, never code.

    A file that can't be read raises a `CheckpointError` naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No checkpoint at {path}: check the path, or train first to write one.")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive whose directory is at the very end
        what = "it is empty" if path.stat().st_size == 0 else "it is truncated, or not a file torch.save wrote"
        raise CheckpointError(f"{path} is not a readable checkpoint: {what} (no complete zip archive). Use an "
                              f"intact copy, or start over without it.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:  # not a forbidden object: damaged bytes in the pickle itself
            raise CheckpointError(f"{path} is damaged: torch could not unpickle it. Use an intact copy, or start "
                                  f"over without it.") from None
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds objects other than tensors and plain containers ({found[1]}), "
            f"and unpickling them could run code. Only load checkpoints you trust; learnloop writes plain "
            f"dicts of state_dicts."
        ) from None
    except Exception as e:  # a damaged archive: torch raises RuntimeError, EOFError, KeyError, ... by where
        raise CheckpointError(f"{path} is damaged: it is a zip archive, but torch could not read it "
                              f"({type(e).__name__}). Use an intact copy, or start over without it.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict; learnloop "
                              f"checkpoints come from learn.save() or the Checkpoint callback.")
    return state


def save_weights(model: Any, opt: Any, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """`{"model": ..., "opt": ..., **extra}` to `path`, atomically (no "opt" when `opt` is None); rank 0 alone
    writes."""
    if not is_main():
        return Path(path)
    state = {**(extra or {}), "model": model.state_dict()}
    if opt is not None:
        state["opt"] = opt.state_dict()
    return atomic_save(state, path)


def load_weights(model: Any, opt: Any, path: str | os.PathLike) -> None:
    """Load what `save_weights` wrote into `model` (and `opt`, when given and saved)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    if opt is not None and "opt" in state:
        opt.load_state_dict(state["opt"])
