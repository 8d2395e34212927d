"""Transfer on a small folder: fine_tune from an earlier run's network vs training from scratch, same epochs.

The earlier run learns digit photos of classes 0-4 (`--source-per-class` training images a class, the `learnloop
fit` folder recipe: image_cnn, AdamW at 2e-3, bs 32, label smoothing, augmentation without flips); the small folder
holds classes 5-9 with `--per-class` training images a class (40 by default, 20 validation images a class). Both
contenders train `--epochs` epochs at 32 px with the same recipe at bs 8 and lr 1e-2 (a small folder needs small
batches: at bs 32 an epoch is 7 steps): scratch with one-cycle, the other with the earlier run's body under a new
head, `fine_tune(epochs - 1, base_lr=1e-2, freeze_epochs=1)`. Printed: valid accuracy of each, per seed and mean.

Run: `python benchmarks/fine_tune.py [--seeds 0 1 2] [--epochs 4] [--per-class 40] [--source-per-class 400]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from learnloop import Learner
from learnloop.data import Augment
from learnloop.data.datasets import image_folder_dls
from learnloop.layer_groups import load_body
from learnloop.metrics import accuracy
from learnloop.nn import functional
from learnloop.nn.models import image_cnn
from learnloop.optim import AdamW

_spec = importlib.util.spec_from_file_location("digit_photos", Path(__file__).with_name("digit_photos.py"))
digit_photos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(digit_photos)

SIZE = 32
SOURCE_BS, SOURCE_LR = 32, 2e-3  # the folder recipe's lr
BS, LR = 8, 1e-2  # on the small folder: bs 32 (7 steps an epoch) left both contenders near chance


def write_folder(root: Path, digits: range, n_train: int, n_valid: int, seed: int) -> Path:
    """`root/train/<d>/` with `n_train` photos of each digit in `digits`, `root/val/<d>/` with `n_valid`."""
    for d in digits:
        for split, n, offset in (("train", n_train, 0), ("val", n_valid, 10_000)):
            folder = root / split / str(d)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                photo = digit_photos.digit_photo(seed * 1_000_003 + d * 100_000 + offset + i, d, 64, 128)
                photo.save(folder / f"{i:05d}.jpg", quality=90)
    return root


def learner(root: Path, seed: int, bs: int = BS, lr: float = LR) -> Learner:
    torch.manual_seed(seed)
    dls = image_folder_dls(root, size=SIZE, bs=bs, augment=Augment(flip=False), seed=seed)
    loss = partial(functional.cross_entropy, label_smoothing=0.1)
    model = image_cnn(3, len(dls.train.ds.vocab))
    return Learner(model, dls, loss_func=loss, lr=lr, opt_func=partial(AdamW, wd=0.01), metrics=[accuracy],
                   progress=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--source-per-class", type=int, default=400)
    p.add_argument("--source-epochs", type=int, default=10)
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t = time.perf_counter()
            source = write_folder(Path(tmp) / f"source{seed}", range(0, 5), args.source_per_class, 20, seed)
            small = write_folder(Path(tmp) / f"small{seed}", range(5, 10), args.per_class, 20, seed + 100)
            print(f"seed {seed}: wrote the folders ({time.perf_counter() - t:.0f} s)", flush=True)
            earlier = learner(source, seed, SOURCE_BS, SOURCE_LR)
            earlier.fit_one_cycle(args.source_epochs)
            scratch = learner(small, seed)
            scratch.fit_one_cycle(args.epochs)
            tuned = learner(small, seed)
            load_body(tuned.model, earlier.model.state_dict())
            tuned.fine_tune(args.epochs - 1, base_lr=LR, freeze_epochs=1)
            row = (earlier.history[-1]["valid_accuracy"], scratch.history[-1]["valid_accuracy"],
                   tuned.history[-1]["valid_accuracy"])
            results.append(row)
            print(f"seed {seed}: earlier run (classes 0-4) {row[0]:.1%}; small folder (5-9, {args.per_class}/class, "
                  f"{args.epochs} epochs): scratch {row[1]:.1%}, fine_tune from the earlier run {row[2]:.1%} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    mean = [sum(r[i] for r in results) / len(results) for i in range(3)]
    print(f"mean over {len(results)} seeds: scratch {mean[1]:.1%}, fine_tune {mean[2]:.1%} "
          f"(+{(mean[2] - mean[1]) * 100:.0f} points)")


if __name__ == "__main__":
    main()
