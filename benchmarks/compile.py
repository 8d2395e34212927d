"""`CompileModel()` (torch.compile, inductor) vs eager: one epoch of `Learner.fit` on MNIST after warm-up (the
compile happens in the warm-up epoch), taking turns; and how many graphs torch.compile compiled.

Run: `python benchmarks/compile.py [--data mnist.npz] [--n 20000]` (inductor on CPU needs a C++ compiler, g++).
"""

from __future__ import annotations

import copy
import statistics

import torch
from common import alternate, machine, mnist_subset, round_ratios, subset_parser

from learnloop import Learner
from learnloop.callbacks import CompileModel
from learnloop.callbacks.training import compiled_graphs
from learnloop.data import ArrayDataset, DataLoader
from learnloop.nn import bn_cnn


def models() -> dict[str, torch.nn.Module]:
    """An MLP 784-256-256-10 and learnloop's bn_cnn (both an nn.Sequential of torch layers)."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    return {"mlp": mlp, "bn_cnn": bn_cnn(in_channels=1, n_classes=10)}


def learner(model: torch.nn.Module, ds: ArrayDataset, bs: int, compiled: bool) -> Learner:
    return Learner(model, DataLoader(ds, bs, shuffle=True, seed=0), lr=0.05, progress=False,
                   opt_func=torch.optim.SGD, loss_func=torch.nn.functional.cross_entropy,
                   cbs=[CompileModel()] if compiled else [])


def main() -> None:
    parser = subset_parser(__doc__, n=10000)
    parser.add_argument("--bs", type=int, default=128)
    args = parser.parse_args()
    ds = mnist_subset(args)
    print(machine())
    for name, model in models().items():
        eager = learner(model, ds, args.bs, compiled=False)
        before = compiled_graphs()
        compiled = learner(copy.deepcopy(model), ds, args.bs, compiled=True)
        times = alternate({"eager": lambda: lambda: eager.fit(1), "compiled": lambda: lambda: compiled.fit(1)},
                          args.repeats)  # warm-up: one epoch of each, which compiles
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        print(f"{name:7s} {len(ds)} samples, bs {args.bs}: eager {e:.2f} s/epoch, compiled {c:.2f} s/epoch "
              f"({c / e:.2f}x, rounds {round_ratios(times['compiled'], times['eager'])}); "
              f"{compiled_graphs() - before} graphs compiled")


if __name__ == "__main__":
    main()
