"""The `learnloop` command: train or find a learning rate on digits, MNIST or an image folder."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

# Per-dataset defaults, overridden by the flags.
RECIPES: dict[str, dict[str, Any]] = {
    "digits": {"arch": "simple_cnn", "epochs": 5, "lr": 0.5, "bs": 32, "sched": "onecycle"},
    # 99.0-99.2% test accuracy in 2 epochs (benchmarks/mnist.py); momentum cycles 0.95-0.85 under one-cycle
    "mnist": {"arch": "bn_cnn", "epochs": 2, "lr": 0.1, "bs": 64, "sched": "onecycle", "label_smoothing": 0.1,
              "momentum": 0.9},
    "folder": {"arch": "simple_cnn", "epochs": 5, "lr": 0.1, "bs": 64, "sched": "onecycle"},
}
ARCHS = ("simple_cnn", "bn_cnn")
SCHEDULES = ("onecycle", "step", "cos", "none")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `learnloop`."""
    parser = argparse.ArgumentParser(
        prog="learnloop",
        description="Train a CNN with learnloop's Learner. DATA is 'digits' (scikit-learn's bundled 8x8 "
        "digits), 'mnist' (an .npz with x_train, y_train, x_test, y_test: --data PATH or LEARNLOOP_DATA), "
        "or a folder of images laid out as ROOT/train/<label>/*.png and ROOT/val/<label>/*.png.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser("fit", help="train and print one line per epoch; writes results to --out")
    find = commands.add_parser("lr-find", help="run the LR finder, print the suggestion, write the plot")
    for sub in (fit, find):
        sub.add_argument("dataset", metavar="DATA", help="digits | mnist | PATH to an image folder")
        sub.add_argument("--data", help="path of the mnist .npz (default: $LEARNLOOP_DATA or the cache dir)")
        sub.add_argument("--arch", choices=ARCHS, help="model (default per dataset: digits simple_cnn, mnist bn_cnn)")
        sub.add_argument("--bs", type=int, help="batch size (default per dataset)")
        sub.add_argument("--size", type=int, default=64, help="image size for image folders (default 64)")
        sub.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
        sub.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda if available)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--out", type=Path, help="output folder (default runs/<DATA>)")
    fit.add_argument("--epochs", type=int, help="number of epochs (default per dataset)")
    fit.add_argument("--lr", type=float, help="learning rate; the peak lr with --sched onecycle")
    fit.add_argument("--sched", choices=SCHEDULES, help="lr schedule (default onecycle)")
    fit.add_argument("--one-cycle", dest="sched", action="store_const", const="onecycle", help="same as --sched onecycle")
    fit.add_argument("--ckpt-every", type=int, default=None, metavar="N", help="checkpoint to OUT/last.ckpt every N batches (default: every epoch)")
    fit.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    fit.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="do not write OUT/tb")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `learnloop` command."""
    args = build_parser().parse_args(argv)
    recipe = RECIPES.get(args.dataset, RECIPES["folder"])
    for key, value in recipe.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.out = args.out or Path("runs") / Path(args.dataset).name
    try:
        return run_fit(args) if args.command == "fit" else run_lr_find(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"learnloop: error: {e}", file=sys.stderr)
        return 2


def make_learner(args: argparse.Namespace, **kwargs: Any):
    """The Learner the flags describe: data, model, loss and metrics."""
    import torch

    from .data import DataLoaders
    from .learner import Learner
    from .metrics import accuracy
    from .nn import functional
    from .optim import SGD

    torch.manual_seed(args.seed)
    train_ds, valid_ds = load_datasets(args)
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=args.bs, n_workers=args.workers, seed=args.seed)
    xb, _ = train_ds[0]
    n_classes = len(train_ds.vocab) if hasattr(train_ds, "vocab") else int(train_ds.y.max()) + 1
    model = make_model(args.arch, in_channels=xb.shape[0], n_classes=n_classes)
    smoothing = getattr(args, "label_smoothing", 0.0)
    loss_func = (lambda p, t: functional.cross_entropy(p, t, label_smoothing=smoothing)) if smoothing else functional.cross_entropy
    momentum = getattr(args, "momentum", 0.0)
    if momentum:
        kwargs.setdefault("opt_func", partial(SGD, momentum=momentum))
    return Learner(model, dls, loss_func=loss_func, lr=args.lr, metrics=[accuracy], device=args.device, **kwargs)


def load_datasets(args: argparse.Namespace):
    """(train, valid) datasets for `args.dataset`."""
    from .data import datasets

    if args.dataset == "digits":
        return datasets.digits(seed=args.seed)
    if args.dataset == "mnist":
        return datasets.mnist(args.data)
    if Path(args.dataset).is_dir():
        return datasets.image_folder(args.dataset, size=args.size)
    raise ValueError(f"unknown dataset {args.dataset!r}: use 'digits', 'mnist', or the path of an image folder.")


def make_model(arch: str, in_channels: int, n_classes: int):
    """A model by name: `simple_cnn` (learnloop's from-scratch CNN) or `bn_cnn` (conv-BN-ReLU)."""
    from . import nn

    if arch == "simple_cnn":
        return nn.simple_cnn(in_channels=in_channels, n_classes=n_classes, widths=(16, 32, 64))
    return nn.bn_cnn(in_channels=in_channels, n_classes=n_classes)


def run_fit(args: argparse.Namespace) -> int:
    """`learnloop fit`: train, print the epoch table, write history.csv, the weights and plots to OUT."""
    from .callbacks import monitoring_callbacks
    from .distributed import is_main

    learn = make_learner(args)
    say = print if is_main() else _quiet  # under torchrun, rank 0 alone reports
    out = args.out
    cbs = monitoring_callbacks(out, append=args.resume, tensorboard=args.tensorboard)
    say(f"learnloop: training {args.arch} on {args.dataset} for {args.epochs} epochs "
        f"(bs {args.bs}, lr {args.lr:g}, {args.sched} schedule, device {learn.device})", flush=True)
    fit_with_schedule(learn, args, cbs)
    learn.save(out / "model.pt")
    if learn.recorder.losses and is_main():
        learn.recorder.plot_loss(out / "loss.png")
    say(f"learnloop: wrote {out / 'history.csv'}, {out / 'model.pt'} and {out / 'loss.png'}")
    if args.tensorboard:
        say(f"learnloop: view the curves with: tensorboard --logdir {out / 'tb'}")
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    """`print` on ranks other than 0: nothing."""


def fit_with_schedule(learn, args: argparse.Namespace, cbs: list) -> None:
    """Fit for `args.epochs` under the schedule `args.sched`; checkpoints to OUT/last.ckpt, `--resume` continues it."""
    from .callbacks import Checkpoint

    ckpt = args.out / "last.ckpt"
    cbs = [*cbs, *schedule_cbs(args.sched, args.lr, args.epochs), Checkpoint(ckpt, every_n_batches=args.ckpt_every)]
    learn.fit(args.epochs, lr=args.lr, cbs=cbs, resume=ckpt if args.resume else None)


def schedule_cbs(name: str, lr: float, n_epoch: int) -> list:
    """The callbacks for `--sched NAME`: one-cycle peaking at `lr`, StepLR (x0.1 every third of the
    epochs), cosine annealing from `lr` to 0, or none (a constant lr)."""
    from .callbacks.schedule import OneCycle, ParamScheduler, TorchScheduler, sched_cos

    if name == "onecycle":
        return [OneCycle(lr)]
    if name == "step":
        return [TorchScheduler(partial(_step_lr_from, lr, max(n_epoch // 3, 1)))]
    if name == "cos":
        return [ParamScheduler("lr", sched_cos(lr, 0.0))]
    if name == "none":
        return []
    raise ValueError(f"Unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}.")


def _step_lr_from(lr: float, step_size: int, opt):
    from torch.optim.lr_scheduler import StepLR

    from .optim import set_hp

    set_hp(opt, "lr", lr)
    for group in opt.param_groups:  # StepLR starts from `initial_lr` when an earlier scheduler left one
        group.pop("initial_lr", None)
    return StepLR(opt, step_size=step_size, gamma=0.1)


def run_lr_find(args: argparse.Namespace) -> int:
    """`learnloop lr-find`: print the suggestions and write OUT/lr_find.png."""
    learn = make_learner(args, progress=False)
    result = learn.lr_find()
    path = Path(args.out) / "lr_find.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    result.plot(path)
    for rule, lr in result.suggestions.items():
        print(f"{rule:>10}: {lr:.3g}")
    print(f"suggested lr: {result.suggestion:.3g} (plot: {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
