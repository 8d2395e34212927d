"""`learnloop predict` over a folder of camera-size JPEGs against a hand-written script (`hand_predict.py`: PIL
open/convert/resize, a torch DataLoader with 2 workers, the same model), as whole processes taking turns.

Run: `python benchmarks/predict.py [--root ROOT] [--model MODEL] [--rounds 3]`. Without --root it writes 1,000
JPEGs (shorter side 160-500 px) with `digit_photos.py` into a temporary folder; without --model it writes the model
file of an (untrained) `image_cnn` at 64 px with the folder's statistics: the work per image is the same whatever
the weights. Prints each round's seconds, the median ratio learnloop / hand-written (target: <= 0.6x) and how many
labels the two agree on (they decode differently: learnloop centre-crops at a DCT scale, the script squashes the
full image).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine
from digit_photos import write_digit_photos

HERE = Path(__file__).parent


def timed(cmd: list[str]) -> float:
    """Wall seconds of `cmd` as a fresh process; fails loudly if it fails."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


def make_model(root: Path, path: Path, size: int) -> Path:
    """The model file of an untrained image_cnn with `root`'s statistics, as `learnloop fit` would write it."""
    from learnloop import Learner
    from learnloop.data.datasets import image_folder_dls
    from learnloop.nn import image_cnn

    dls = image_folder_dls(root, size=size, augment=False)
    return Learner(image_cnn(3, len(dls.vocab)), dls, progress=False).export(path)


def labels(csv_path: Path) -> dict[str, str]:
    with open(csv_path) as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, help="a folder of JPEGs (default: write 1,000 into a temporary folder)")
    p.add_argument("--model", type=Path, help="a model file (default: an untrained image_cnn at --size)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=1000, help="images to write without --root (default 1000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    root = args.root or write_digit_photos(tmp / "photos", n=args.n)
    model = args.model or make_model(root, tmp / "model.pt", args.size)
    n = sum(1 for _ in root.rglob("*.jpg"))
    cmds = {
        "learnloop predict": [sys.executable, "-m", "learnloop", "predict", str(model), str(root), "--workers",
                              str(args.workers), "--out", str(tmp / "learnloop.csv")],
        "hand-written": [sys.executable, str(HERE / "hand_predict.py"), str(model), str(root), str(tmp / "hand.csv"),
                         "--workers", str(args.workers)],
        # what learnloop does about threads, done by hand: the cores the workers leave (see cli/model_flags.py)
        "hand-written, threads shared": [sys.executable, str(HERE / "hand_predict.py"), str(model), str(root),
                                         str(tmp / "hand1.csv"), "--workers", str(args.workers), "--threads",
                                         str(max(1, len(os.sched_getaffinity(0)) - args.workers))],
    }
    print(f"{n} JPEGs, {args.workers} workers; {machine()}")
    times: dict[str, list[float]] = {name: [] for name in cmds}
    names = list(cmds)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts with another one
            times[name].append(timed(cmds[name]))
        print(f"round {r}: " + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in names), flush=True)
    ours = times[names[0]]
    agree = labels(tmp / "learnloop.csv")
    same = sum(agree.get(path) == label for path, label in labels(tmp / "hand.csv").items())
    print(f"median of {args.rounds} rounds, {n} images:")
    for name in names:
        per_round = sorted(a / b for a, b in zip(ours, times[name]))
        secs = statistics.median(times[name])
        print(f"  {name:<30} {secs:6.2f} s  {n / secs:5.0f} images/s   learnloop / this = "
              f"{statistics.median(ours) / secs:.2f}x (rounds {per_round[0]:.2f}-{per_round[-1]:.2f})")
    print(f"same label from learnloop and the hand-written script for {same}/{n} images; target: learnloop predict "
          f"<= 0.6x the hand-written script")

if __name__ == "__main__":
    main()
