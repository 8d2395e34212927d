"""Time to 99% on MNIST: `learnloop fit mnist`'s recipe vs the same model and schedule in a hand-written loop.

Both train `learnloop.nn.bn_cnn` (4 conv-BN-ReLU layers) for the recipe's epochs with one-cycle and label
smoothing, and evaluate on the 10,000 test images after each epoch; the runs take turns in one process.
Run: `python benchmarks/mnist.py` (MNIST from --data, default ../shared/data/mnist.npz, else $LEARNLOOP_DATA/mnist.npz).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from common import default_mnist, machine, ratio, round_ratios

from learnloop.callbacks.schedule import schedule_cbs
from learnloop.cli.build import make_learner, make_model
from learnloop.cli.config import RunConfig, recipe_config
from learnloop.data.datasets import mnist

TARGET = 0.99
Result = tuple[float, float]  # seconds, final test accuracy


def hand_loop(data: tuple, recipe: RunConfig, seed: int) -> Result:
    """The recipe written out: tensor indexing, torch.optim.SGD, torch's OneCycleLR (same shape as learnloop's)."""
    x, y, xt, yt = data
    torch.manual_seed(seed)
    model = make_model(recipe.arch, in_channels=1, n_classes=10)
    bs, lr, epochs, smoothing = recipe.bs, recipe.lr, recipe.epochs, recipe.label_smoothing
    momentum = recipe.momentum
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    steps = epochs * -(-len(x) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25, div_factor=10,
                                                final_div_factor=1e4, cycle_momentum=momentum > 0,
                                                base_momentum=0.85, max_momentum=0.95)
    gen = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(bs):
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=smoothing)
            loss.backward()
            opt.step()
            opt.zero_grad()
            sched.step()
        model.eval()
        correct, total_loss = torch.zeros((), dtype=torch.long), torch.zeros(())
        with torch.no_grad():  # the test loss and accuracy, as the Learner reports them
            for i in range(0, len(xt), bs):
                out, yb = model(xt[i:i + bs]), yt[i:i + bs]
                total_loss += F.cross_entropy(out, yb, label_smoothing=smoothing, reduction="sum")
                correct += (out.argmax(1) == yb).sum()
        acc, _ = correct.item() / len(xt), total_loss.item() / len(xt)
    return time.perf_counter() - t, acc


def learnloop_fit(recipe: RunConfig, seed: int) -> Result:
    """`learnloop fit mnist` without its monitoring files: `make_learner` and the recipe's schedule."""
    config = replace(recipe, seed=seed)
    learn = make_learner(config, progress=False)
    t = time.perf_counter()
    learn.fit(config.epochs, lr=config.lr, cbs=schedule_cbs(config.sched, config.lr, config.epochs))
    return time.perf_counter() - t, learn.history[-1]["valid_accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_mnist(), help="MNIST .npz (default ../shared/data/mnist.npz)")
    p.add_argument("--repeats", type=int, default=3, help="rounds (different seeds); medians over them")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    recipe = recipe_config("mnist", data=args.data, device="cpu", **({"epochs": args.epochs} if args.epochs else {}))
    train, test = mnist(args.data)
    data = (train.x, train.y, test.x, test.y)
    print(f"mnist: time to {TARGET:.1%} test accuracy, recipe {recipe}, {args.repeats} alternating rounds\n{machine()}")

    runs: dict[str, Callable[[int], Result]] = {
        "hand loop": lambda seed: hand_loop(data, recipe, seed),
        "learnloop fit mnist": lambda seed: learnloop_fit(recipe, seed),
    }
    results: dict[str, list[Result]] = {name: [] for name in runs}
    for seed in range(args.repeats):
        for name in list(runs)[::1 if seed % 2 == 0 else -1]:  # each goes first in turn
            results[name].append(runs[name](seed))
            secs, acc = results[name][-1]
            print(f"  round {seed}  {name:20} {secs:7.1f} s  accuracy {acc:.4f}", flush=True)
    base = [s for s, _ in results["hand loop"]]
    for name, rs in results.items():
        secs, accs = [s for s, _ in rs], [a for _, a in rs]
        print(f"{name:20} median {statistics.median(secs):7.1f} s  {ratio(secs, base):.3f}x the hand loop "
              f"(rounds {round_ratios(secs, base)})  "
              f"accuracy median {statistics.median(accs):.4f} (min {min(accs):.4f})")
    ours = results["learnloop fit mnist"]
    r, acc = ratio([s for s, _ in ours], base), statistics.median(a for _, a in ours)
    met = r <= 1.05 and acc >= TARGET
    print(f"target learnloop >= {TARGET:.1%} in <= 1.05x the hand loop's time: {'met' if met else 'NOT met'} "
          f"({acc:.4f}, {r:.3f}x)")


if __name__ == "__main__":
    main()
