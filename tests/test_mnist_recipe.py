"""`learnloop fit mnist --epochs 2` reaches 99% test accuracy (minutes on 2 cores: LEARNLOOP_SLOW=1 runs it).

Its time lives in benchmarks/mnist.py; this only checks that the recipe gets there.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from learnloop.cli import main

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
# LEARNLOOP_DATA is the folder holding mnist.npz (as everywhere in learnloop)
DATA = MNIST if MNIST.is_file() else Path(os.environ.get("LEARNLOOP_DATA", MNIST.parent)) / "mnist.npz"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LEARNLOOP_SLOW") != "1", reason="trains 2 epochs of MNIST: set LEARNLOOP_SLOW=1")
@pytest.mark.skipif(not DATA.is_file(), reason=f"no MNIST file at {DATA}")
def test_fit_mnist_reaches_99_percent_in_2_epochs(tmp_path):
    out = tmp_path / "out"
    assert main(["fit", "mnist", "--data", str(DATA), "--epochs", "2", "--out", str(out), "--no-tensorboard"]) == 0
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert float(rows[-1]["valid_accuracy"]) >= 0.99
