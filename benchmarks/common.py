"""What the benchmarks share: finding MNIST, timing runs that take turns, printing a table of ratios."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # run from a fresh clone without installing: python benchmarks/NAME.py
    sys.path.insert(0, str(SRC))

# ../shared/data/mnist.npz from the repo root, as the project lays it out; else where learnloop looks.
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def default_mnist() -> str | None:
    """The MNIST .npz to use when --data is not given: ../shared/data/mnist.npz, else None: then
    `learnloop.data.datasets.mnist` looks in the folder $LEARNLOOP_DATA and in ~/.cache/learnloop."""
    return str(SHARED_MNIST) if SHARED_MNIST.exists() else None


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of `fn`."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(setups: dict[str, Callable[[], Callable[[], object]]], n: int,
              warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of `n` runs of each entry, taking turns (in rotating order) so that drift hits all alike.

    Each value is a setup: called untimed, it returns the function that is timed (so building a model,
    an optimizer or a trainer does not count, only the epoch).
    """
    for _ in range(warmup):
        for setup in setups.values():
            setup()()
    times: dict[str, list[float]] = {name: [] for name in setups}
    names = list(setups)
    for r in range(n):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts elsewhere: no one always goes first
            times[name].append(seconds(setups[name]()))
    return times


def ratio(times: list[float], base: list[float]) -> float:
    """Median time over median base time."""
    return statistics.median(times) / statistics.median(base)


def round_ratios(times: list[float], base: list[float]) -> str:
    """The spread of per-round ratios (time / base time in the same round): how noisy the machine was."""
    rs = sorted(t / b for t, b in zip(times, base))
    return f"{rs[0]:.2f}-{rs[-1]:.2f}"


def machine() -> str:
    """A one-line description of where the figures come from."""
    return (f"{date.today()}, {platform.machine()} {os.cpu_count()}-core CPU, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, python {platform.python_version()}")


def subset_parser(description: str, n: int) -> argparse.ArgumentParser:
    """The flags of a benchmark on the first `n` MNIST training samples: --data, --n, --repeats, --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=default_mnist())
    parser.add_argument("--n", type=int, default=n, help="training samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def mnist_subset(args: argparse.Namespace):
    """The first `args.n` MNIST training samples as an ArrayDataset, with torch on `args.threads` threads."""
    from learnloop.data import ArrayDataset
    from learnloop.data.datasets import mnist

    torch.set_num_threads(args.threads)
    train, _ = mnist(args.data)
    return ArrayDataset(train.x[: args.n], train.y[: args.n])
