"""What the commands that use a trained model share (`predict`, `evaluate`, `export`): MODEL, its flags, and
loading it as one line of error when it can't be."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import UserError
from .flags import add_debug_flag, flag_number


def add_model_flags(sub: argparse.ArgumentParser, loader_flags: bool = True) -> None:
    """MODEL (a run folder or its model file), and `--bs`, `--workers`, `--device` for the commands that predict."""
    sub.add_argument("model", metavar="MODEL", help="a run folder (holding model.pt, as `learnloop fit` writes it) "
                     "or a model file")
    if loader_flags:
        sub.add_argument("--bs", type=flag_number(int, 1), help="batch size (default: the model's validation one)")
        sub.add_argument("--workers", type=flag_number(int, 0), default=0,
                         help="DataLoader worker processes decoding images (default 0)")
        sub.add_argument("--device", help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    add_debug_flag(sub)


def load_model(path: str, device: str | None = None, images: bool = True) -> Any:
    """`load_learner(path)`, its problems (missing, unreadable, no pipeline for images) as UserErrors."""
    from ..api import load_learner

    learn = load_learner(path, device=device)
    if images and learn.dls.pipeline is None:
        raise UserError(f"{path} records no input pipeline (a model file written before learnloop recorded one, or "
                        f"for data it can't describe): write it again from Python with learn.export(path).")
    return learn


def share_cores(n_workers: int) -> None:
    """With decoding workers on CPU cores, the model in this process gets the cores they leave (at least one): on
    2 cores with 2 workers, 2 torch threads would spin-wait on each other and run the convolutions ~3x slower."""
    import torch

    if n_workers > 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores - n_workers))
