"""A Hugging Face `datasets.Dataset` (dict rows, `with_format("torch")`) vs the same data as an `ArrayDataset`:
one epoch of `Learner.fit` (MLP 784-64-10, bs 64, shuffled), and the loading alone, taking turns; then the time
to turn the dataset's columns into an ArrayDataset once.

Run: `python benchmarks/hf_datasets.py [--data mnist.npz] [--n 20000]` (needs `pip install -e ".[datasets]"`).
"""

from __future__ import annotations

import statistics
import time

import torch
from common import alternate, machine, mnist_subset, subset_parser
from datasets import Array3D, Dataset, Features, Value

from learnloop import Learner
from learnloop.data import ArrayDataset, DataLoader


def as_hf(ds: ArrayDataset) -> Dataset:
    """The same samples as a Hugging Face dataset: rows {"image": (1, 28, 28) float32, "label": int64}."""
    features = Features({"image": Array3D(tuple(ds.x.shape[1:]), "float32"), "label": Value("int64")})
    return Dataset.from_dict({"image": ds.x.numpy(), "label": ds.y.numpy()}, features=features).with_format("torch")


def fit_epoch(ds) -> callable:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    learn = Learner(model, DataLoader(ds, 64, shuffle=True, seed=0), lr=0.1, progress=False,
                    opt_func=torch.optim.SGD, loss_func=torch.nn.functional.cross_entropy)
    return lambda: learn.fit(1)


def drain(ds) -> callable:
    dl = DataLoader(ds, 64, shuffle=True, seed=0)
    return lambda: [None for _ in dl]


def main() -> None:
    parser = subset_parser(__doc__, n=20000)
    args = parser.parse_args()
    arrays = mnist_subset(args)
    hf = as_hf(arrays)
    print(machine())
    for what, make in (("fit(1)", fit_epoch), ("loading only", drain)):
        times = alternate({"ArrayDataset": lambda: make(arrays), "datasets.Dataset": lambda: make(hf)}, args.repeats)
        base = statistics.median(times["ArrayDataset"])
        for name, t in times.items():
            med = statistics.median(t)
            print(f"{what:13s} {name:17s} {med:7.2f} s/epoch  ({med / base:.1f}x)  {len(arrays)} samples")
    t = time.perf_counter()
    columns = hf[:]  # every row at once: one read of the whole columns, the fast path for data that fits in memory
    ArrayDataset(columns["image"], columns["label"])
    print(f"columns = ds[:]; ArrayDataset(columns['image'], columns['label']): {time.perf_counter() - t:.2f} s, once")


if __name__ == "__main__":
    main()
