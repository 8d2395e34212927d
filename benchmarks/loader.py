"""learnloop's DataLoader vs torch's, same process, alternating runs; then an image folder with 0 vs 2 workers.

Run: `python benchmarks/loader.py [--data mnist.npz]` (default: ../shared/data/mnist.npz, else mnist.npz
in the folder $LEARNLOOP_DATA or in the cache dir, as `learnloop.data.datasets.mnist` looks).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from common import alternate, default_mnist, machine
from PIL import Image
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnloop.data import ArrayDataset, DataLoader, image_folder_split
from learnloop.data.datasets import mnist


def drain(make: Callable[[], Iterable]) -> Callable[[], None]:
    """One epoch of the loader `make()` builds, doing nothing with the batches."""
    def epoch() -> None:
        for _ in make():
            pass

    return epoch


def compare(runs: dict[str, Callable[[], Iterable]], n: int) -> dict[str, float]:
    """Median seconds per epoch of each loader, the loaders taking turns so drift hits all alike."""
    times = alternate({name: (lambda make=make: drain(make)) for name, make in runs.items()}, n)
    return {name: statistics.median(t) for name, t in times.items()}


def write_pngs(x: torch.Tensor, y: torch.Tensor, root: Path, n_train: int) -> None:
    for i, (img, label) in enumerate(zip((x[:, 0] * 255).byte().numpy(), y.tolist())):
        d = root / ("train" if i < n_train else "val") / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", "--path", dest="path", default=default_mnist(), help="MNIST .npz")
    p.add_argument("--n", type=int, default=20_000, help="MNIST samples per epoch")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--n-images", type=int, default=3_000)
    args = p.parse_args()

    train, _ = mnist(args.path)
    x, y = train.x[:args.n].clone(), train.y[:args.n].clone()
    ads, tds = ArrayDataset(x, y), TensorDataset(x, y)
    print(f"loader: {args.n} MNIST samples {tuple(x.shape[1:])} {x.dtype}, bs 64, median of {args.repeats} "
          f"alternating epochs\n{machine()}")
    for shuffle in (True, False):
        t = compare({"learnloop": lambda: DataLoader(ads, 64, shuffle=shuffle),
                     "torch": lambda: TorchDataLoader(tds, batch_size=64, shuffle=shuffle)}, args.repeats)
        print(f"  shuffle={shuffle!s:5}  learnloop {t['learnloop'] * 1e3:7.1f} ms   torch {t['torch'] * 1e3:7.1f} ms"
              f"   learnloop/torch = {t['learnloop'] / t['torch']:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(x[:args.n_images], y[:args.n_images], Path(tmp), n_train=args.n_images * 5 // 6)
        ifs, _ = image_folder_split(tmp, size=28, mode="L")
        t = compare({"n_workers=0": lambda: DataLoader(ifs, 64, shuffle=True),
                     "n_workers=2": lambda: DataLoader(ifs, 64, shuffle=True, n_workers=2)}, max(3, args.repeats // 2))
        print(f"image folder, {len(ifs)} PNGs 28x28, bs 64:  n_workers=0 {t['n_workers=0'] * 1e3:7.1f} ms   "
              f"n_workers=2 {t['n_workers=2'] * 1e3:7.1f} ms   (2 workers)/(0 workers) = "
              f"{t['n_workers=2'] / t['n_workers=0']:.3f}")


if __name__ == "__main__":
    main()
