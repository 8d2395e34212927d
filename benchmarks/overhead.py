"""Loop overhead: one epoch of an MLP 784-64-10 on MNIST, a hand-written loop vs learnloop (and peers).

Same process, runs taking turns, median of `--repeats` rounds; each ratio is a median time over the hand
loop's median time, followed by the range of per-round ratios (the machine's noise). Run: `python benchmarks/overhead.py` (MNIST from --data, default
../shared/data/mnist.npz, else $LEARNLOOP_DATA/mnist.npz). fastai, Lightning and Keras (torch backend) run too when
installed (`pip install -e .[bench]`); otherwise their rows say "skipped: not installed".
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
from collections.abc import Callable, Iterable
from functools import partial

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import alternate, default_mnist, machine, ratio, round_ratios  # noqa: E402

from learnloop import Learner  # noqa: E402
from learnloop.data import ArrayDataset, DataLoaders  # noqa: E402
from learnloop.data.datasets import mnist  # noqa: E402

LR = 0.1
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x_train, y_train, x_valid, y_valid


def mlp(seed: int = 0) -> torch.nn.Module:
    """The MLP 784-64-10 every contender trains, initialised alike."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def hand_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, train: Iterable, valid: Iterable) -> float:
    """One epoch written out: train on `train`'s batches, then the mean loss over `valid`'s."""
    model.train()
    for xb, yb in train:
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    total, n = torch.zeros(()), 0
    with torch.no_grad():
        for xb, yb in valid:
            total += F.cross_entropy(model(xb), yb, reduction="sum")
            n += len(yb)
    return total.item() / n


def hand_loop(data: Data, bs: int) -> Callable[[], float]:
    """The baseline: index tensors a batch at a time, torch.optim.SGD, then one validation pass."""
    x, y, xv, yv = data
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def epoch() -> float:
        train = ((x[idx], y[idx]) for idx in torch.randperm(len(x)).split(bs))
        return hand_epoch(model, opt, train, ((xv[i:i + bs], yv[i:i + bs]) for i in range(0, len(xv), bs)))

    return epoch


def torch_loader_loop(data: Data, bs: int) -> Callable[[], float]:
    """The hand loop fed by torch.utils.data.DataLoader: what most scripts do."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y, xv, yv = data
    train = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)
    valid = DataLoader(TensorDataset(xv, yv), batch_size=bs)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    return lambda: hand_epoch(model, opt, train, valid)


def learnloop_fit(data: Data, bs: int, own: bool = False) -> Callable[[], None]:
    """`Learner.fit(1)`, progress=False, default callbacks; torch's SGD and F.cross_entropy unless `own`."""
    from learnloop import nn, optim

    x, y, xv, yv = data
    dls = DataLoaders.from_dsets(ArrayDataset(x, y), ArrayDataset(xv, yv), bs=bs)
    kw = {} if own else {"opt_func": torch.optim.SGD, "loss_func": F.cross_entropy}
    learn = Learner(mlp(), dls, lr=LR, progress=False, **kw)
    if own:
        assert learn.opt_func is optim.SGD and learn.loss_func is nn.cross_entropy
    return lambda: learn.fit(1)


def fastai_fit(data: Data, bs: int) -> Callable[[], None]:
    """fastai's Learner.fit(1) without progress bar or logging, torch's SGD, fastai's DataLoader."""
    from functools import partial

    from fastai.data.core import DataLoaders as FastaiDataLoaders
    from fastai.data.load import DataLoader as FastaiDataLoader
    from fastai.learner import Learner as FastaiLearner
    from fastai.optimizer import OptimWrapper
    from torch.utils.data import TensorDataset

    x, y, xv, yv = data
    dls = FastaiDataLoaders(FastaiDataLoader(TensorDataset(x, y), bs=bs, shuffle=True),
                            FastaiDataLoader(TensorDataset(xv, yv), bs=bs), device="cpu")
    learn = FastaiLearner(dls, mlp(), loss_func=F.cross_entropy, lr=LR,
                          opt_func=partial(OptimWrapper, opt=torch.optim.SGD))

    def fit() -> None:
        with learn.no_logging():  # no bar either: fastai.callback.progress is not imported
            learn.fit(1)

    return fit


def lightning_fit(data: Data, bs: int) -> Callable[[], None]:
    """Lightning's Trainer.fit for one epoch (no logger, checkpoints, bar or summary), torch's DataLoader."""
    import logging
    import warnings

    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # no banners and tips every fit
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")  # e.g. "num_workers=0 may be a bottleneck"

    class Lit(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = mlp()

        def training_step(self, batch, i):
            return F.cross_entropy(self.model(batch[0]), batch[1])

        def validation_step(self, batch, i):
            self.log("valid_loss", F.cross_entropy(self.model(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    x, y, xv, yv = data
    train = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)
    valid = DataLoader(TensorDataset(xv, yv), batch_size=bs)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    lit = Lit()
    return lambda: trainer.fit(lit, train, valid)


def keras_fit(data: Data, bs: int) -> Callable[[], None]:
    """Keras 3 (torch backend) model.fit for one epoch with validation data, SGD, verbose=0."""
    import keras

    x, y, xv, yv = (t.flatten(1).numpy() if t.ndim > 1 else t.numpy() for t in data)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return lambda: model.fit(x, y, batch_size=bs, epochs=1, validation_data=(xv, yv), verbose=0, shuffle=True)


PEERS = {"fastai": ("fastai", fastai_fit), "lightning": ("lightning", lightning_fit), "keras": ("keras", keras_fit)}
HAND = "hand loop (tensor indexing)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_mnist(), help="MNIST .npz (default ../shared/data/mnist.npz)")
    p.add_argument("--n", type=int, default=20_000, help="training samples (the valid set is MNIST's 10,000)")
    p.add_argument("--bs", type=int, nargs="+", default=[64, 512])
    p.add_argument("--repeats", type=int, default=9, help="rounds; figures are medians over them (>= 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--no-peers", action="store_true", help="skip fastai, Lightning and Keras")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    train, valid = mnist(args.data)
    data = (train.x[:args.n].clone(), train.y[:args.n].clone(), valid.x, valid.y)
    print(f"overhead: MLP 784-64-10, {args.n} MNIST train + {len(valid)} valid samples, 1 epoch, SGD lr {LR}, "
          f"median of {args.repeats} alternating rounds\n{machine()}")
    wanted = {} if args.no_peers else PEERS
    peers = {name: (lambda bs, make=make: make(data, bs)) for name, (module, make) in wanted.items()
             if importlib.util.find_spec(module)}
    missing = [name for name in wanted if name not in peers]

    # Two passes, each against its own hand-loop runs: learnloop's first, before any peer is imported (fastai
    # patches torch on import), then the peers. Peers are slow, so they get fewer rounds.
    ours: dict[str, Callable[[int], Callable[[], object]]] = {
        HAND: lambda bs: hand_loop(data, bs),
        "learnloop Learner.fit(1)": lambda bs: learnloop_fit(data, bs),
        "learnloop, own SGD + cross_entropy": lambda bs: learnloop_fit(data, bs, own=True),
        "hand loop + torch DataLoader": lambda bs: torch_loader_loop(data, bs),
    }
    rows: dict[str, dict[int, str]] = {}
    for contenders, repeats in [(ours, args.repeats), ({HAND: ours[HAND], **peers}, max(3, args.repeats // 2))]:
        if len(contenders) < 2:
            continue
        for bs in args.bs:
            times = alternate({name: partial(make, bs) for name, make in contenders.items()}, repeats)
            for name, t in times.items():
                cell = (f"{statistics.median(t) * 1e3:7.1f} ms {ratio(t, times[HAND]):6.3f}x "
                        f"({round_ratios(t, times[HAND])})")
                rows.setdefault(name, {}).setdefault(bs, cell)  # the hand loop's row: from the first pass
    for name in missing:
        rows[name] = {bs: "skipped: not installed" for bs in args.bs}

    width = max(len(name) for name in rows)
    print(f"{'median epoch time, ratio to the hand loop (range of per-round ratios)':{width}}")
    print(f"{'':{width}}" + "".join(f"  {f'bs {bs}':>32}" for bs in args.bs))
    for name, cells in rows.items():
        print(f"{name:{width}}" + "".join(f"  {cells[bs]:>32}" for bs in args.bs))
    ours = [float(rows["learnloop Learner.fit(1)"][bs].split()[2].rstrip("x")) for bs in args.bs]
    print(f"target learnloop <= 1.05x the hand loop: {'met' if max(ours) <= 1.05 else 'NOT met'} "
          f"({', '.join(f'bs {bs}: {r:.3f}x' for bs, r in zip(args.bs, ours))})")


if __name__ == "__main__":
    main()
