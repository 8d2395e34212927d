"""Training samples per second with 1 process vs 2 under torchrun (gloo on CPU, nccl when GPUs are there).

The same worker (this file with `--worker`) trains a small CNN on the first `--images` MNIST training images for
`--epochs` epochs, batch size `--bs` per process, one thread per process; it times the training phases of the
epochs after the first (warm-up) and reports the samples every rank together trained per second. The parent
runs it in one process and under `python -m torch.distributed.run --standalone --nproc_per_node 2`, taking
turns `--repeats` times (so load from other programs hits both alike), and prints the medians and their
ratio (2.0 would be perfect).

Run: `python benchmarks/ddp.py [--path mnist.npz] [--images 12800] [--epochs 3] [--bs 64] [--device cpu] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


def worker(args: argparse.Namespace) -> None:
    """One rank: train, and on rank 0 print `RESULT {json}`."""
    torch.set_num_threads(1)
    from learnloop import Callback, Learner
    from learnloop import distributed as dist
    from learnloop.data import ArrayDataset, DataLoaders
    from learnloop.data.datasets import mnist
    from learnloop.nn import simple_cnn

    class TrainTimer(Callback):
        """Seconds spent in each training phase."""

        def __init__(self):
            self.times: list[float] = []

        def before_train(self):
            self.start = time.perf_counter()

        def after_train(self):
            self.times.append(time.perf_counter() - self.start)

    train, valid = mnist(args.path)
    train = ArrayDataset(train.x[: args.images], train.y[: args.images])
    valid = ArrayDataset(valid.x[:512], valid.y[:512])
    dls = DataLoaders.from_dsets(train, valid, bs=args.bs, seed=0)
    timer = TrainTimer()
    torch.manual_seed(0)
    model = simple_cnn(in_channels=1, n_classes=10, widths=(16, 32, 64))
    learn = Learner(model, dls, lr=0.1, cbs=[timer], progress=False, device=args.device)
    learn.fit(args.epochs)
    seconds = sum(timer.times[1:])  # the first epoch warms up
    if dist.is_main():
        samples = (args.epochs - 1) * args.images  # every rank together covers the dataset once per epoch
        result = {"world_size": dist.world_size(), "samples_per_s": samples / seconds, "device": str(learn.device)}
        print("RESULT " + json.dumps(result), flush=True)


def launch(n_procs: int, argv: list[str]) -> dict:
    """Run the worker in `n_procs` processes; its result."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n_procs)] if n_procs > 1 else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, *launcher, __file__, "--worker", *argv], env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"the {n_procs}-process run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    """Parse the flags; run 1 and 2 processes; print samples/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=str(SHARED_MNIST) if SHARED_MNIST.is_file() else None)
    parser.add_argument("--images", type=int, default=12800, help="training images (default 12800)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, the first one untimed (default 3)")
    parser.add_argument("--bs", type=int, default=64, help="batch size per process (default 64)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu: gloo)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, taking turns (default 3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    argv = [f"--images={args.images}", f"--epochs={args.epochs}", f"--bs={args.bs}", f"--device={args.device}"]
    argv += [f"--path={args.path}"] if args.path else []
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for n_procs in runs:
            runs[n_procs].append(launch(n_procs, argv))
    one, two = (statistics.median(r["samples_per_s"] for r in runs[n]) for n in (1, 2))
    print(f"device {runs[1][0]['device']}, {args.images} MNIST images, bs {args.bs} per process, 1 thread per "
          f"process, median of {args.repeats}")
    print(f"1 process  : {one:8.0f} samples/s")
    print(f"2 processes: {two:8.0f} samples/s (DDP, {'nccl' if args.device != 'cpu' else 'gloo'})")
    print(f"scaling ratio (2 vs 1): {two / one:.2f}x  (2.00x is perfect)")


if __name__ == "__main__":
    main()
