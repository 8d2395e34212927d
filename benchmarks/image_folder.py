"""An image folder of camera-size JPEGs: learnloop's loader vs the plain PyTorch recipe, same process, taking turns.

Run: `python benchmarks/image_folder.py [--root ROOT]` (default: writes 4,000 JPEGs with benchmarks/digit_photos.py
into a temporary folder first, ~2 minutes). Prints
1. JPEG decoding: ms per image, decoded and resized to --size, by each decoder available (how learnloop's is chosen);
2. one training epoch at --size px, 0 and 2 workers: learnloop's `image_folder_dls` loader (uint8 from the workers,
   float + normalise once per batch here; plain, with Pillow as the only decoder, augmented) against the plain
   recipe users write (PIL open, convert, resize, float + normalise per sample, `torch.utils.data.DataLoader`,
   persistent workers), as median seconds, images/s, time to the first batch and the ratio learnloop / torch;
3. listing a 100k-image folder (empty files: indexing must not read them): seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from common import alternate, machine
from digit_photos import write_digit_photos
from PIL import Image
from torch.utils.data import DataLoader as TorchDataLoader

from learnloop.data.datasets import image_folder_dls
from learnloop.data.images import decode_image, jpeg_decoder

MEAN, STD = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1), torch.tensor([0.25, 0.25, 0.25]).view(3, 1, 1)


class TorchRecipe(torch.utils.data.Dataset):
    """What users write without a library: PIL open, convert, resize, to float, normalise, per sample."""

    def __init__(self, root: Path, size: int) -> None:
        self.files = sorted(root.glob("train/*/*.jpg"))
        classes = sorted({f.parent.name for f in self.files})
        self.labels = [classes.index(f.parent.name) for f in self.files]
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as im:
            im = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255)
        return (x - MEAN) / STD, self.labels[i]


def pil_full(path: Path, size: int) -> np.ndarray:
    """The recipe's decode: the whole JPEG, then one resize."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB").resize((size, size), Image.BILINEAR))


def time_decoders(files: list[Path], size: int, repeats: int) -> None:
    decoders: dict[str, Callable[[Path], object]] = {
        "PIL, full size + resize (the recipe's)": lambda f: pil_full(f, size),
        "PIL draft (DCT scale 1/2..1/8) + resize": lambda f: np.array(decode_image(str(f), (size, size),
                                                                                   decoder="pillow")),
    }
    if jpeg_decoder() == "simplejpeg":
        decoders["simplejpeg (DCT scale M/8) + resize"] = lambda f: np.array(decode_image(
            str(f), (size, size), decoder="simplejpeg"))
    else:
        print("  simplejpeg: not installed (pip install 'learnloop[jpeg]')")
    setups = {name: (lambda fn=fn: lambda: [fn(f) for f in files]) for name, fn in decoders.items()}
    times = alternate(setups, repeats)
    base = statistics.median(times[next(iter(times))])
    print(f"JPEG decode + resize to {size}x{size}, {len(files)} images, median of {repeats} alternating rounds "
          f"(learnloop uses: {jpeg_decoder()})")
    for name, t in times.items():
        ms = statistics.median(t) / len(files) * 1e3
        print(f"  {name:42s} {ms:6.2f} ms/image   {statistics.median(t) / base:5.2f}x")


def drain(dl: Iterable, first: list[float]) -> Callable[[], None]:
    """One epoch of `dl`; appends the seconds to its first batch to `first`."""
    def epoch() -> None:
        t = time.perf_counter()
        it = iter(dl)
        next(it)
        first.append(time.perf_counter() - t)
        for _ in it:
            pass

    return epoch


def time_epochs(root: Path, size: int, bs: int, workers: int, repeats: int) -> None:
    kw = dict(batch_size=bs, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    loaders = {"torch recipe": TorchDataLoader(TorchRecipe(root, size), **kw)}
    variants = {"learnloop": (False, "auto"), "learnloop, Pillow only": (False, "pillow"),
                "learnloop, augmented": (True, "auto")}
    if jpeg_decoder() == "pillow":  # without simplejpeg "auto" is Pillow already
        del variants["learnloop, Pillow only"]
    for name, (augment, decoder) in variants.items():
        loaders[name] = image_folder_dls(root, size, bs, augment=augment, n_workers=workers, seed=0,
                                         decoder=decoder).train
    n = len(loaders["learnloop"].ds)
    firsts: dict[str, list[float]] = {name: [] for name in loaders}
    times = alternate({name: (lambda name=name, dl=dl: drain(dl, firsts[name])) for name, dl in loaders.items()},
                      repeats)
    base = times["torch recipe"]
    print(f"epoch of {n} images at {size}px, bs {bs}, {workers} workers, median of {repeats} alternating rounds:")
    for name, t in times.items():
        ratios = sorted(a / b for a, b in zip(t, base))
        med = statistics.median(t)
        first = statistics.median(firsts[name][1:])  # [0] is the warm-up epoch's
        print(f"  {name:22s} {med:6.2f} s  {n / med:6.0f} images/s  first batch {first:.3f} s"
              f"   learnloop/torch = {statistics.median(t) / statistics.median(base):.2f} "
              f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")


INDEX_PROBE = """
import json, sys, time, tracemalloc
from learnloop.data import ImageFolder

def rss_mib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

before = rss_mib("VmRSS:")
t = time.perf_counter()
ds = ImageFolder(sys.argv[1], "train")
seconds = time.perf_counter() - t
rss, hwm = rss_mib("VmRSS:") - before, rss_mib("VmHWM:")
del ds
tracemalloc.start()  # python's own allocations while indexing: the peak, not just what stays
ds = ImageFolder(sys.argv[1], "train")
peak = tracemalloc.get_traced_memory()[1] / 2**20
print(json.dumps({"n": len(ds), "seconds": seconds, "rss": rss, "hwm": hwm, "peak": peak}))
"""


def time_index(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for split, count in (("train", n), ("val", 10)):
            for c in range(100):
                (Path(tmp) / split / f"class{c:03d}").mkdir(parents=True)
            for i in range(count):
                (Path(tmp) / split / f"class{i % 100:03d}" / f"img{i:07d}.jpg").touch()
        out = subprocess.run([sys.executable, "-c", INDEX_PROBE, tmp], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        r = json.loads(out.stdout)
        print(f"index a {r['n']}-image folder (100 classes; empty files, none is read): {r['seconds']:.2f} s, "
              f"RSS +{r['rss']:.0f} MiB (python allocations peak at {r['peak']:.0f} MiB; whole process peak "
              f"{r['hwm']:.0f} MiB, mostly torch)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, help="image folder (default: generate 4,000 JPEGs in a temporary folder)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 0])
    p.add_argument("--threads", type=int, default=1, help="torch threads in the main process (default 1)")
    p.add_argument("--index-n", type=int, default=100_000, help="images in the indexing test (0 skips it)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"image folder benchmark\n{machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "digit_photos"
            t = time.perf_counter()
            write_digit_photos(root, 4000)
            print(f"wrote 4000 JPEGs to {root} in {time.perf_counter() - t:.0f} s")
        files = sorted(root.glob("train/*/*.jpg"))
        time_decoders(files[:: max(1, len(files) // 300)], args.size, args.repeats)
        for workers in args.workers:
            time_epochs(root, args.size, args.bs, workers, args.repeats)
    if args.index_n:
        time_index(args.index_n)


if __name__ == "__main__":
    main()
