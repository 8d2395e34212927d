"""Whole-process speed, as a user times it: `learnloop fit mnist --epochs 2` against a hand-written script
(`hand_mnist.py`: same model family and recipe) as separate processes taking turns, and `learnloop --help`
against `python -c "import torch"`.

Run: `python benchmarks/whole_process.py [--data PATH] [--rounds 3]`. Prints each run's wall time, the final
test accuracy, learnloop's time to its first batch, and the median ratio (target: <= 1.0x at >= 99.0%).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import default_mnist, machine

HERE = Path(__file__).parent
LEARNLOOP = [sys.executable, "-m", "learnloop"]


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of `cmd` as a fresh process, and its stdout; fails loudly if it fails."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    secs = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return secs, out.stdout


def learnloop_run(data: str) -> tuple[float, float, float]:
    """(seconds, test accuracy, seconds to the first batch) of `learnloop fit mnist --epochs 2`."""
    out_dir = Path(tempfile.mkdtemp()) / "run"
    try:
        secs, stdout = timed([*LEARNLOOP, "fit", "mnist", "--epochs", "2", "--data", data, "--out", str(out_dir)])
    finally:
        shutil.rmtree(out_dir.parent, ignore_errors=True)
    rows = [line.split() for line in stdout.splitlines() if re.match(r"\d+\s", line)]
    first = float(re.search(r"first batch ([\d.]+) s", stdout).group(1))
    return secs, float(rows[-1][3]), first  # epoch train_loss valid_loss valid_accuracy time


def hand_run(data: str) -> tuple[float, float]:
    """(seconds, test accuracy) of the hand-written script."""
    secs, stdout = timed([sys.executable, str(HERE / "hand_mnist.py"), data, "2"])
    return secs, float(stdout.strip().splitlines()[-1].split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_mnist(), help="MNIST .npz (default ../shared/data/mnist.npz)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians over them")
    args = p.parse_args()
    data = str(Path(args.data).resolve())
    print(f"whole process: learnloop fit mnist --epochs 2 vs hand_mnist.py, {args.rounds} alternating rounds\n{machine()}")

    ours, hand, firsts = [], [], []
    for r in range(args.rounds):
        for name in (["learnloop", "hand"] if r % 2 == 0 else ["hand", "learnloop"]):
            if name == "learnloop":
                secs, acc, first = learnloop_run(data)
                ours.append((secs, acc))
                firsts.append(first)
                print(f"  round {r}  learnloop fit mnist  {secs:6.1f} s  accuracy {acc:.4f}  first batch {first:.2f} s")
            else:
                secs, acc = hand_run(data)
                hand.append((secs, acc))
                print(f"  round {r}  hand-written script  {secs:6.1f} s  accuracy {acc:.4f}")
    ratios = [o[0] / h[0] for o, h in zip(ours, hand)]
    ratio, acc = statistics.median(ratios), statistics.median(a for _, a in ours)
    print(f"learnloop fit mnist: median {statistics.median(s for s, _ in ours):.1f} s, hand script "
          f"{statistics.median(s for s, _ in hand):.1f} s: {ratio:.3f}x (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"accuracy median {acc:.4f} (hand {statistics.median(a for _, a in hand):.4f}); "
          f"first batch median {statistics.median(firsts):.2f} s")
    print(f"target <= 1.0x at >= 99.0%: {'met' if ratio <= 1.0 and acc >= 0.99 else 'NOT met'}")

    helps = [timed([*LEARNLOOP, "--help"])[0] for _ in range(5)]
    torches = [timed([sys.executable, "-c", "import torch"])[0] for _ in range(5)]
    print(f"learnloop --help: median {statistics.median(helps):.3f} s; python -c 'import torch': "
          f"{statistics.median(torches):.3f} s ({statistics.median(helps) / statistics.median(torches):.2f}x)")


if __name__ == "__main__":
    main()
