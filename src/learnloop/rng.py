"""Every random generator a fit draws from, captured and restored: checkpoints and `lr_find` use the same helpers.

States are kept as tensors and plain containers, so `torch.load(weights_only=True)` reads them back.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def _loader_rngs(learn: Any) -> list[Any]:
    """The random generators a train loader (or its sampler) holds: torch, numpy or python ones."""
    dl = learn.dls.train
    found = {}
    for owner in (dl, getattr(dl, "sampler", None)):
        for value in getattr(owner, "__dict__", {}).values():
            if isinstance(value, (torch.Generator, np.random.Generator, random.Random)):
                found[id(value)] = value
    return list(found.values())


def _get_rng(rng: Any) -> Any:
    if isinstance(rng, torch.Generator):
        return rng.get_state()
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else rng.getstate()


def _set_rng(rng: Any, state: Any) -> None:
    if isinstance(rng, torch.Generator):
        rng.set_state(state)
    elif isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    else:
        rng.setstate(state)


def _plain(state: Any) -> Any:
    """Tuples (python's `random` state) as lists: checkpoints hold plain containers only."""
    return [_plain(s) for s in state] if isinstance(state, (tuple, list)) else state


def _tupled(state: Any) -> Any:
    return tuple(_tupled(s) for s in state) if isinstance(state, list) else state


def rng_state(learn: Any) -> dict:
    """Every random generator a fit draws from, in a form `torch.load(weights_only=True)` reads back."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    loader = [_get_rng(rng) for rng in _loader_rngs(learn)]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": _plain(random.getstate()),
        "loader": [_plain(s) if isinstance(s, tuple) else s for s in loader],
    }


def set_rng_state(learn: Any, state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tupled(state["python"]))
    for rng, saved in zip(_loader_rngs(learn), state["loader"]):
        _set_rng(rng, _tupled(saved) if isinstance(rng, random.Random) else saved)
