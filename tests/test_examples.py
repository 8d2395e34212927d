"""Every script in examples/ runs end to end (smallest settings) and prints a real accuracy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"  # this repo's setup; the MNIST test skips without it


class Case(NamedTuple):
    args: list[str]  # smallest settings; relative paths land in the test's tmp dir
    accuracy: str  # a regex whose group is the final accuracy the script prints
    files: tuple[str, ...] = ()  # glob patterns of what it must write, relative to the tmp dir
    says: tuple[str, ...] = ()  # more lines it must print


CASES = {
    "from_scratch_learner": Case(["--epochs", "1", "--out", "out"], r"final valid loss \S+ +accuracy ([\d.]+)",
                                 files=("out/lr_find.png", "out/one_cycle.png"),
                                 says=("without ToCHW:", "lr_find suggestions:")),
    "keras_style_callbacks": Case(["--epochs", "1"], r"final val_accuracy ([\d.]+)"),
    "callbacks_and_schedulers": Case(["--epochs", "4"], r"valid accuracy: ([\d.]+)",
                                     says=("per-epoch lr: ['0.1', '0.1', '0.1', '0.01']",)),  # StepLR(3, 0.1)
    "train_and_evaluate": Case(["--epochs", "1", "--out", "out"], r"Accuracy: ([\d.]+) \(\d+/360 test images\)",
                               files=("out/model.pth",)),
    "optuna_study": Case(["--trials", "4", "--epochs", "2"], r"best valid accuracy: ([\d.]+)",
                         says=("trials complete,",)),
    "monitoring": Case(["--epochs", "1", "--logdir", "tb", "--csv", "history.csv", "--plot", "loss.png"],
                       r"Accuracy: ([\d.]+)", files=("history.csv", "loss.png", "tb/events.out.tfevents.*")),
}


def run_example(name: str, args: list[str], cwd: Path) -> str:
    """Run examples/<name>.py as a user would, with this checkout's src first on the path; its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    # one intra-op thread: on busy cores torch's OpenMP threads spin-wait on each other, up to 20x slower
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def accuracy_in(output: str, pattern: str) -> float:
    match = re.findall(pattern, output)
    assert match, f"no line matching {pattern!r} in:\n{output[-3000:]}"
    return float(match[-1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_and_learns(name, tmp_path):
    case = CASES[name]
    out = run_example(name, case.args, tmp_path)
    # one epoch on digits is already far above chance (0.1) for every example
    assert 0.3 < accuracy_in(out, case.accuracy) <= 1.0
    for line in case.says:
        assert line in out
    for pattern in case.files:
        files = list(tmp_path.glob(pattern))
        assert files, f"{name} wrote nothing matching {pattern}"
        for file in files:
            data = file.read_bytes()
            assert data and (file.suffix != ".png" or data[:8] == b"\x89PNG\r\n\x1a\n"), file


@pytest.mark.slow
def test_from_scratch_with_worker_processes(tmp_path):
    out = run_example("from_scratch_learner", ["--epochs", "3", "--n-workers", "2", "--out", "out"], tmp_path)
    assert accuracy_in(out, CASES["from_scratch_learner"].accuracy) > 0.9


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_file(), reason=f"no MNIST file at {MNIST}")
def test_from_scratch_on_mnist(tmp_path):
    out = run_example("from_scratch_learner", ["--mnist", str(MNIST), "--epochs", "1", "--out", "out"], tmp_path)
    assert accuracy_in(out, CASES["from_scratch_learner"].accuracy) > 0.9
