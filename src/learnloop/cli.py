"""The `learnloop` command: train or find a learning rate on digits, MNIST or an image folder.

A mistake in what the user passed (a flag, a data file, an --out folder, a checkpoint) ends with one line,
`learnloop: error: ...`, and exit status 2; `--debug` (or `LEARNLOOP_DEBUG=1`) shows its traceback instead.
Anything else is a bug and keeps its traceback. Ctrl-C or SIGTERM stops `fit` after the current batch,
saves OUT/last.ckpt and exits 130 (SIGINT) or 143 (SIGTERM); `--resume` continues from there.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from .errors import SettingError, UserError
from .signals import FitInterrupted, SignalLatch

START = time.perf_counter()  # the command's start, give or take the interpreter's own
STARTED_AT = time.time()  # the same moment on the clock files are stamped with

# Per-dataset defaults, overridden by the flags.
RECIPES: dict[str, dict[str, Any]] = {
    "digits": {"arch": "simple_cnn", "epochs": 5, "lr": 0.5, "bs": 32, "sched": "onecycle"},
    # >= 99.0% test accuracy in 2 epochs, faster than a hand-written script (benchmarks/whole_process.py);
    # Nesterov momentum cycles 0.95-0.85 under one-cycle; channels-last convs are ~20% faster on CPU too
    "mnist": {"arch": "bn_cnn", "epochs": 2, "lr": 0.4, "bs": 128, "sched": "onecycle", "label_smoothing": 0.1,
              "momentum": 0.9, "nesterov": True, "wd": 5e-4, "channels_last": True},
    # photos: conv-BN-ReLU wide enough for colour, AdamW (SGD stalls at chance for epochs on small folders),
    # augmented (random resized crop, flip, colour jitter); README "Image folders" has the measured accuracies
    "folder": {"arch": "image_cnn", "epochs": 10, "lr": 2e-3, "bs": 64, "sched": "onecycle", "label_smoothing": 0.1,
               "opt": "adamw", "wd": 0.01, "augment": True, "flip": True},
}
ARCHS = ("simple_cnn", "bn_cnn", "image_cnn")
SCHEDULES = ("onecycle", "step", "cos", "none")
RUN_FILES = ("model.pt", "last.ckpt", "history.csv", "loss.png", "tb")  # what `fit` writes into OUT
USER_ERROR = 2  # exit status of a user mistake, as argparse's


class _Parser(argparse.ArgumentParser):
    """argparse, reporting a bad flag in the same one line as every other user mistake."""

    def error(self, message: str):
        _print_error(f"{message} (see '{self.prog} --help')")
        self.exit(USER_ERROR)


def _flag_number(convert: type, minimum: float, above: bool = False) -> Callable[[str], Any]:
    """An argparse type: `convert(text)`, finite and at least `minimum` (above it, with `above`); else an error
    that argparse prefixes with the flag's name."""
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum)):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {minimum:g}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `learnloop`."""
    parser = _Parser(
        prog="learnloop",
        description="Train a CNN with learnloop's Learner. DATA is 'digits' (scikit-learn's bundled 8x8 "
        "digits), 'mnist' (an .npz with x_train, y_train, x_test, y_test: the file --data FILE, else "
        "mnist.npz in the folder $LEARNLOOP_DATA, else in ~/.cache/learnloop), or a folder of images laid out "
        "as ROOT/train/<label>/*.jpg and ROOT/val/<label>/*.jpg (JPEG, PNG, ...).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser(
        "fit", help="train and print one line per epoch; writes results to --out",
        epilog="Ctrl-C or SIGTERM stops after the current batch, saves OUT/last.ckpt and prints the command that "
        "resumes (exit status 130 or 143). A second Ctrl-C aborts at once. Errors in what you pass end with "
        "one line and exit status 2; --debug shows the traceback.",
    )  # fmt: skip
    find = commands.add_parser("lr-find", help="run the LR finder, print the suggestion, write the plot")
    for sub in (fit, find):
        sub.add_argument("dataset", metavar="DATA", help="digits | mnist | PATH to an image folder")
        sub.add_argument("--data", metavar="FILE", help="the mnist .npz (default: $LEARNLOOP_DATA/mnist.npz, "
                         "else ~/.cache/learnloop/mnist.npz)")
        sub.add_argument("--arch", choices=ARCHS,
                         help="model (default per dataset: digits simple_cnn, mnist bn_cnn, image folders image_cnn)")
        sub.add_argument("--bs", type=_flag_number(int, 1), help="batch size (default per dataset)")
        sub.add_argument("--size", type=_flag_number(int, 1), default=64,
                         help="image size for image folders (default 64)")
        sub.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                         help="image folders: random resized crop, flip and colour jitter while training (default on)")
        sub.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                         help="image folders: no horizontal flips (for digits, text: where a mirror changes the label)")
        sub.add_argument("--workers", type=_flag_number(int, 0), default=0,
                         help="DataLoader worker processes (default 0)")
        sub.add_argument("--device", help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--out", type=Path, help="output folder (default runs/<DATA>)")
        sub.add_argument("--debug", action="store_true", help="show the full traceback of any error "
                         "(also LEARNLOOP_DEBUG=1)")
    fit.add_argument("--epochs", type=_flag_number(int, 1), help="number of epochs (default per dataset)")
    fit.add_argument("--lr", type=_flag_number(float, 0, above=True),
                     help="learning rate; the peak lr with --sched onecycle")
    fit.add_argument("--sched", choices=SCHEDULES, help="lr schedule (default onecycle)")
    fit.add_argument("--one-cycle", dest="sched", action="store_const", const="onecycle", help="same as --sched onecycle")
    fit.add_argument("--ckpt-every", type=_flag_number(int, 1), default=None, metavar="N",
                     help="checkpoint to OUT/last.ckpt every N batches (default: every epoch)")
    fit.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last.ckpt")
    fit.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (its model.pt, "
                     "last.ckpt, history.csv, loss.png and tb/); without it fit refuses to touch an earlier run")
    fit.add_argument("--log-every", type=_flag_number(float, 0), default=30, metavar="SECONDS",
                     help="when the output is not a terminal, print a progress line every SECONDS of an epoch "
                     "(default 30; 0: never)")
    fit.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="do not write OUT/tb")
    fit.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                     help="log the run to MLflow: to URI, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `learnloop` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if threading.current_thread() is threading.main_thread():
        START_UP.install()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while the flags were parsed: nothing has started
        pass
    except Exception:
        if START_UP.received is None or _debugging("--debug" in argv):
            raise
    finally:
        START_UP.restore()
    print("learnloop: aborted.", file=sys.stderr, flush=True)
    return 130


# A Ctrl-C during start-up (imports, data, model) is held until `_started()`: raised inside torch's import it aborts
# the process (a C++ terminate), and other libraries swallow it or turn it into another error (numpy's "cannot
# load module more than once").
START_UP = SignalLatch((signal.SIGINT,), then="stopping before training starts")


def _started() -> None:
    """Start-up is over: act on a Ctrl-C held during it now, and on any later one at once, as Python does."""
    if START_UP.received is not None:
        raise KeyboardInterrupt
    START_UP.restore()


def _debugging(flag: bool) -> bool:
    """`--debug` or LEARNLOOP_DEBUG: user errors keep their traceback."""
    return flag or os.environ.get("LEARNLOOP_DEBUG", "") not in ("", "0")


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    debug = _debugging(args.debug)
    args.out = args.out or Path("runs") / Path(args.dataset).resolve().name  # `fit .` too: runs/<its name>
    existed = args.out.exists()
    with _one_line_warnings():
        try:
            return _run(args)
        except UserError as e:
            if debug:
                raise
            _remove_if_new_and_empty(args.out, existed)
            _print_error(str(e))
            return USER_ERROR
        except BrokenPipeError:  # stdout's reader has gone (`learnloop fit ... | head`): stop, as Unix tools do
            if debug:
                raise
            _silence_stdout()
            print("learnloop: stopped: standard output was closed (the reader of its pipe ended).", file=sys.stderr)
            return 128 + signal.SIGPIPE
        except KeyboardInterrupt as e:  # FitInterrupted (a clean stop) or an abort
            if debug:
                raise
            print(f"learnloop: {_interrupted(e, args, argv)}", file=sys.stderr, flush=True)
            return 128 + getattr(e, "signum", 2)  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
        except Exception:
            if debug or START_UP.received is None:
                raise
            print(f"learnloop: {_interrupted(KeyboardInterrupt(), args, argv)}", file=sys.stderr, flush=True)
            return 130  # a second Ctrl-C a library turned into another error (see START_UP)


def _remove_if_new_and_empty(out: Path | None, existed: bool) -> None:
    """A run that failed before writing anything leaves no empty --out folder behind."""
    try:
        if out is not None and not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    except OSError:
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that writing or flushing what is left of it can't raise again at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (pytest's capture, a notebook)
        pass


def entry() -> None:
    """The console script: `main`, then an exit that a late Ctrl-C can't turn into a silent kill."""
    status = main()
    # Everything is written; torch's teardown still takes up to a second, and a signal there would end the
    # process with no word and status -2 instead of this one.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)


def _run(args: argparse.Namespace) -> int:
    recipe = RECIPES.get(args.dataset, RECIPES["folder"])
    for key, value in recipe.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return run_fit(args) if args.command == "fit" else run_lr_find(args)


def _interrupted(e: KeyboardInterrupt, args: argparse.Namespace, argv: list[str]) -> str:
    """The line an interrupted command prints: where it stopped and how to resume."""
    if args.command != "fit":
        return f"{getattr(e, 'signal_name', 'SIGINT')} stopped {args.command}; nothing was written."
    ckpt = e.checkpoint if isinstance(e, FitInterrupted) else args.out and Path(args.out) / "last.ckpt"
    what = e.describe() if isinstance(e, FitInterrupted) else "aborted."
    if ckpt is None or not Path(ckpt).is_file():
        return what
    if "--overwrite" in argv and Path(ckpt).stat().st_mtime < STARTED_AT:  # the run this one was to replace
        return f"{what} The earlier run in {args.out} is untouched."
    again = [a for a in argv if a != "--overwrite"] + ([] if "--resume" in argv else ["--resume"])
    return f"{what} Resume with: {shlex.join(['learnloop', *again])}"


def _colour(text: str, code: str, stream: Any) -> str:
    """`text` in an ANSI colour on a terminal, plain elsewhere or when NO_COLOR is set (no-color.org)."""
    plain = os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or not stream.isatty()
    return text if plain else f"\033[{code}m{text}\033[0m"


def _print_error(message: str) -> None:
    print(f"learnloop: {_colour('error:', '1;31', sys.stderr)} {message}", file=sys.stderr, flush=True)


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as `learnloop: warning: ...`, without the source line Python adds."""
    # formatwarning, not showwarning: pytest.warns and catch_warnings(record=True) still capture them
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"learnloop: {_colour('warning:', '33', sys.stderr)} {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def check_device(name: str | None) -> None:
    """A UserError unless `--device NAME` is a device this machine has (None: the default, always fine)."""
    import torch

    if name is None:
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"--device {name!r} is not a device: use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
            raise SettingError(f"--device {name}: no CUDA GPU is available{build}; use --device cpu, or leave "
                            f"--device out to use a GPU when there is one.")
        if device.index is not None and device.index >= n:
            raise SettingError(f"--device {name}: this machine has {n} CUDA GPU{'s' * (n > 1)}, cuda:0 to "
                            f"cuda:{n - 1}.")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise SettingError(f"--device {name}: Apple's MPS is not available here; use --device cpu.")


def prepare_out(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Check OUT before anything trains: it must be writable, and an earlier run in it is continued (`resume`),
    replaced (`overwrite`), or else left alone with a UserError."""
    from .callbacks.logging import ensure_writable_dir
    from .distributed import is_main

    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them.")
    ensure_writable_dir(out, "--out")
    if resume:
        if not (out / "last.ckpt").is_file():
            raise UserError(f"--resume: there is no checkpoint {out / 'last.ckpt'} to continue from; run without "
                            f"--resume to start a new run.")
        return
    found = earlier_run(out)
    if found and not overwrite:
        raise UserError(f"{out} already holds a run ({', '.join(found)}): pass --resume to continue it, "
                        f"--overwrite to replace it, or another --out.")
    if overwrite and is_main():  # under torchrun rank 0 alone deletes, as it alone writes
        for name in RUN_FILES:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def earlier_run(out: Path) -> list[str]:
    """The files of a finished or stopped run in `out`: model.pt, last.ckpt, a history.csv with rows."""
    found = [name for name in ("model.pt", "last.ckpt") if (out / name).is_file()]
    history = out / "history.csv"
    if history.is_file():
        with open(history) as f:
            if sum(1 for _ in f) > 1:  # a header alone: a run that failed before its first epoch ended
                found.append(history.name)
    return found


def make_learner(args: argparse.Namespace, **kwargs: Any):
    """The Learner the flags describe: data, model, loss and metrics."""
    import torch

    from .data import DataLoaders
    from .learner import Learner
    from .metrics import accuracy
    from .nn import functional
    from .optim import SGD, AdamW

    torch.manual_seed(args.seed)
    if args.dataset in ("digits", "mnist") or not Path(args.dataset).is_dir():
        dls = DataLoaders.from_dsets(*load_datasets(args), bs=args.bs, n_workers=args.workers, seed=args.seed)
    else:
        dls = image_folder_loaders(args)
    train_ds = dls.train.ds
    xb, _ = train_ds[0]
    n_classes = len(train_ds.vocab) if hasattr(train_ds, "vocab") else int(train_ds.y.max()) + 1
    model = make_model(args.arch, in_channels=xb.shape[0], n_classes=n_classes)
    smoothing = getattr(args, "label_smoothing", 0.0)
    loss_func = (lambda p, t: functional.cross_entropy(p, t, label_smoothing=smoothing)) if smoothing else functional.cross_entropy
    momentum, wd = getattr(args, "momentum", 0.0), getattr(args, "wd", 0.0)
    if getattr(args, "opt", "sgd") == "adamw":
        kwargs.setdefault("opt_func", partial(AdamW, wd=wd))
    elif momentum or wd:
        kwargs.setdefault("opt_func", partial(SGD, momentum=momentum, wd=wd, nesterov=getattr(args, "nesterov", False)))
    if getattr(args, "channels_last", False):
        from .callbacks import ChannelsLast

        kwargs["cbs"] = [ChannelsLast(), *kwargs.get("cbs", [])]
    return Learner(model, dls, loss_func=loss_func, lr=args.lr, metrics=[accuracy], device=args.device, **kwargs)


def load_datasets(args: argparse.Namespace):
    """(train, valid) datasets for 'digits' or 'mnist'; an error naming the choices for anything else."""
    from .data import datasets

    for flag in ("augment", "flip"):
        if getattr(args, flag) is not None and args.dataset in ("digits", "mnist"):
            raise UserError(f"--{'no-flip' if flag == 'flip' else flag} applies to image folders only, "
                            f"not to {args.dataset}; drop it.")
    if args.dataset == "digits":
        return datasets.digits(seed=args.seed)
    if args.dataset == "mnist":
        return datasets.mnist(args.data)
    if Path(args.dataset).is_file():
        raise UserError(f"{args.dataset!r} is a file: pass the image folder that holds train/ and val/ (ROOT in "
                        f"ROOT/train/<label>/*.jpg), or 'digits' or 'mnist'.")
    raise UserError(f"unknown dataset {args.dataset!r}: no such folder. Use 'digits', 'mnist', or the path of an image "
                    f"folder (ROOT/train/<label>/, ROOT/val/<label>/).")


def image_folder_loaders(args: argparse.Namespace):
    """DataLoaders for the image folder `args.dataset`: uint8 from the workers, augmented unless `--no-augment`."""
    from .data import Augment
    from .data.datasets import image_folder_dls

    augment = Augment(flip=args.flip) if args.augment else None
    return image_folder_dls(args.dataset, size=args.size, bs=args.bs, augment=augment, n_workers=args.workers,
                            seed=args.seed)


def make_model(arch: str, in_channels: int, n_classes: int):
    """A model by name: `simple_cnn` (learnloop's from-scratch CNN), `bn_cnn` (conv-BN-ReLU) or `image_cnn`
    (a wider, deeper conv-BN-ReLU with max pools, for colour photos)."""
    from . import nn

    if arch == "simple_cnn":
        return nn.simple_cnn(in_channels=in_channels, n_classes=n_classes, widths=(16, 32, 64))
    if arch == "image_cnn":
        return nn.image_cnn(in_channels=in_channels, n_classes=n_classes)
    return nn.bn_cnn(in_channels=in_channels, n_classes=n_classes)


def run_fit(args: argparse.Namespace) -> int:
    """`learnloop fit`: train, print the epoch table, write history.csv, the weights and plots to OUT."""
    from .callbacks import monitoring_callbacks
    from .distributed import is_main

    check_device(args.device)
    out = args.out
    prepare_out(out, resume=args.resume, overwrite=args.overwrite)
    tracking = mlflow_cbs(args)  # a missing mlflow fails before the data is loaded
    meta = run_meta(args)
    resume = _resume(out / "last.ckpt", meta) if args.resume else None  # read and checked before the data loads
    learn = make_learner(args)
    _started()
    learn.progress.every = args.log_every
    say = print if is_main() else _quiet  # under torchrun, rank 0 alone reports
    say(f"learnloop: training {args.arch} on {args.dataset} for {args.epochs} epochs "
        f"(bs {args.bs}, lr {args.lr:g}, {args.sched} schedule, device {learn.device})", flush=True)
    if resume is not None:
        epoch, it = resume.position
        say(f"learnloop: resuming {resume.path} at epoch {epoch}, batch {it}/{len(learn.dls.train)}", flush=True)
    cbs = monitoring_callbacks(out, append=args.resume, tensorboard=args.tensorboard) + tracking
    try:
        fit_with_schedule(learn, args, cbs, meta=meta, resume=resume)
        finished_by = None
    except FitInterrupted as e:  # stopped at the end of the last epoch: nothing was left to train
        if e.position != (args.epochs, 0):
            raise
        finished_by = e.signum
    with SignalLatch(then="writing the results first") as late:  # a moment's work: a Ctrl-C now waits for it
        vocab = getattr(learn.dls.train.ds, "vocab", None)  # an image folder's labels, output by output
        learn.save(out / "model.pt", extra={"classes": list(vocab)} if vocab is not None else None)
        if learn.recorder.losses and is_main():
            learn.recorder.plot_loss(out / "loss.png")
        say(f"learnloop: wrote {out / 'history.csv'}, {out / 'model.pt'} and {out / 'loss.png'}")
        if args.tensorboard:
            say(f"learnloop: view the curves with: tensorboard --logdir {out / 'tb'}")
        for cb in tracking if is_main() else []:  # other ranks never connect
            say(f"learnloop: MLflow run {cb.run_id}; view it with: mlflow ui --backend-store-uri "
                f"{cb.client.tracking_uri} (the UI is in the full `pip install mlflow`)")
    signum = finished_by or late.received
    if signum is not None:
        print(f"learnloop: {signal.Signals(signum).name} came after training had finished; the results above "
              f"were written in full.", file=sys.stderr, flush=True)
        return 128 + signum
    return 0


def run_meta(args: argparse.Namespace) -> dict[str, Any]:
    """What a resume must share with the run it continues: data, model, batch size, seed (and image size)."""
    folder = args.dataset not in ("digits", "mnist")
    meta = {"dataset": str(Path(args.dataset).resolve()) if folder else args.dataset, "arch": args.arch,
            "bs": args.bs, "seed": args.seed}
    return {**meta, "size": args.size} if folder else meta


def _resume(ckpt: Path, meta: dict[str, Any]):
    """The `Resume` callback for OUT/last.ckpt: read and checked against this run's `meta` now, before training."""
    from .callbacks.checkpoint import Resume

    return Resume(ckpt, meta=meta)


def mlflow_cbs(args: argparse.Namespace) -> list:
    """`--mlflow [URI]`: an `MLflowCallback` with the flags as params; none without the flag."""
    if args.mlflow is None:
        return []
    from .callbacks import MLflowCallback

    hparams = {"dataset": args.dataset, "arch": args.arch, "sched": args.sched, "seed": args.seed}
    try:
        return [MLflowCallback(args.mlflow or None, hparams=hparams)]
    except ImportError as e:  # a missing extra is the user's to fix: one line, like the other usage errors
        raise SettingError(f"--mlflow: {e}") from e


def _quiet(*args: Any, **kwargs: Any) -> None:
    """`print` on ranks other than 0: nothing."""


def fit_with_schedule(learn, args: argparse.Namespace, cbs: list, meta: dict[str, Any] | None = None,
                      resume: Any = None) -> None:
    """Fit for `args.epochs` under the schedule `args.sched`, checkpointing to OUT/last.ckpt (with `meta`);
    `resume`, a `Resume` callback, continues from a checkpoint."""
    from .callbacks import Checkpoint
    from .callbacks.progress import FirstBatchClock

    ckpt = Checkpoint(args.out / "last.ckpt", every_n_batches=args.ckpt_every, meta=meta)
    cbs = [*cbs, *schedule_cbs(args.sched, args.lr, args.epochs), ckpt, *([resume] if resume else []),
           FirstBatchClock(START, "learnloop: first batch {:.2f} s after start (imports, data, model, loggers)")]
    learn.fit(args.epochs, lr=args.lr, cbs=cbs)


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
    from .callbacks.logging import ensure_writable_dir

    check_device(args.device)
    path = ensure_writable_dir(args.out, "--out") / "lr_find.png"  # checked before the finder runs
    learn = make_learner(args, progress=False)
    _started()
    result = learn.lr_find()
    result.plot(path)
    for rule, lr in result.suggestions.items():
        print(f"{rule:>10}: {lr:.3g}")
    print(f"suggested lr: {result.suggestion:.3g} (plot: {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
