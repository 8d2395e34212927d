"""`learnloop fit DATA`: train, print one line per epoch, write the results to OUT; Ctrl-C stops after the batch
with OUT/last.ckpt saved, and `--resume` continues from it."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import SettingError
from ..signals import FitInterrupted, SignalLatch
from .build import make_learner
from .config import BUILT_IN, SCHEDULES, RunConfig, data_key, given_settings, resolve
from .flags import add_run_flags, flag_number
from .output import quiet
from .runs import prepare_out
from .start import check_arch, start_from
from .startup import START, started

NAME = "fit"


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fit` and its flags."""
    sub = commands.add_parser(
        NAME, help="train and print one line per epoch; writes results to --out",
        epilog="Ctrl-C or SIGTERM stops after the current batch, saves OUT/last.ckpt and prints the command that "
        "resumes (exit status 130 or 143). A second Ctrl-C aborts at once. Errors in what you pass end with "
        "one line and exit status 2; --debug shows the traceback.",
    )  # fmt: skip
    add_run_flags(sub)
    sub.add_argument("--epochs", type=flag_number(int, 1), help="number of epochs (default per dataset)")
    sub.add_argument("--lr", type=flag_number(float, 0, above=True),
                     help="learning rate; the peak lr with --sched onecycle")
    sub.add_argument("--sched", choices=SCHEDULES, help="lr schedule (default onecycle)")
    sub.add_argument("--one-cycle", dest="sched", action="store_const", const="onecycle", help="same as --sched onecycle")
    sub.add_argument("--ckpt-every", type=flag_number(int, 1), default=None, metavar="N",
                     help="checkpoint to OUT/last.ckpt every N batches (default: every epoch)")
    sub.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last.ckpt, with the "
                     "settings in OUT/config.json (flags may change only --epochs, --device, --workers, --log-every, "
                     "--ckpt-every, --no-tensorboard, --mlflow and --wandb)")
    sub.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (its model.pt, "
                     "last.ckpt, history.csv, loss.png, tb/ and config.json); without it fit refuses to touch an "
                     "earlier run")
    sub.add_argument("--log-every", type=flag_number(float, 0), metavar="SECONDS",
                     help="when the output is not a terminal, print a progress line every SECONDS of an epoch "
                     "(default 30; 0: never)")
    sub.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
                     help="do not write OUT/tb")
    sub.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                     help="log the run to MLflow: to URI, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    sub.add_argument("--wandb", nargs="?", const="", metavar="PROJECT",
                     help="log the run to Weights & Biases, in PROJECT (else $WANDB_PROJECT); WANDB_MODE=offline "
                     "writes it under ./wandb with no network")
    sub.add_argument("--from", dest="start_from", metavar="RUN", help="start from an earlier run (its folder or "
                     "model.pt): the same architecture, its body's weights, a new head for DATA's classes; trained "
                     "with fine_tune (--lr is its base lr; --sched does not apply)")
    sub.add_argument("--freeze-epochs", type=flag_number(int, 0), metavar="N", help="with --from or --pretrained: "
                     "the first N of the --epochs train the new head alone (default 1)")
    return sub


def run(args: argparse.Namespace) -> int:
    """Train, print the epoch table, write history.csv, the weights and plots to OUT."""
    out = args.out
    saved = out / "config.json"
    config = resolve(args, RunConfig.load(saved) if args.resume and saved.is_file() else None)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    from ..callbacks import monitoring_callbacks  # torch: --print-config answers without it
    from ..distributed import check_device, is_main

    check_device(config.device)
    start = None
    if config.start_from:  # read and checked before the data loads, as a resume's checkpoint
        config, start = start_from(config, arch_given="arch" in given_settings(args))
    else:
        check_arch(config)
    tuning = start is not None or config.pretrained
    if tuning and config.freeze_epochs >= config.epochs:
        raise SettingError(f"--freeze-epochs {config.freeze_epochs} leaves none of the {config.epochs} epochs to "
                           f"train the whole network: pass more --epochs, or fewer --freeze-epochs.")
    prepare_out(out, resume=args.resume, overwrite=args.overwrite)
    tracking = tracking_cbs(config)  # a missing mlflow or wandb fails before the data is loaded
    meta = run_meta(config)
    resume = resume_from(out / "last.ckpt", meta) if args.resume else None  # read and checked before the data loads
    learn = make_learner(config, start)
    started()
    if is_main():
        config.save(saved)
    learn.progress.every = config.log_every
    say = print if is_main() else quiet  # under torchrun, rank 0 alone reports
    how = (f"fine-tuning {config.arch} from {start['path'] if start else 'its published weights'} on "
           f"{config.dataset} for {config.epochs} epochs, {config.freeze_epochs} frozen (bs {config.bs}, base lr "
           f"{config.lr:g}" if tuning else f"training {config.arch} on {config.dataset} for {config.epochs} epochs "
           f"(bs {config.bs}, lr {config.lr:g}, {config.sched} schedule")
    say(f"learnloop: {how}, device {learn.device})", flush=True)
    if resume is not None:
        epoch, it = resume.position
        say(f"learnloop: resuming {resume.path} at epoch {epoch}, batch {it}/{len(learn.dls.train)}", flush=True)
    cbs = monitoring_callbacks(out, append=args.resume, tensorboard=config.tensorboard) + tracking
    try:
        fit_with_schedule(learn, config, cbs, out=out, meta=meta, resume=resume)
        finished_by = None
    except FitInterrupted as e:  # stopped at the end of the last epoch: nothing was left to train
        if e.position != (config.epochs, 0):
            raise
        finished_by = e.signum
    with SignalLatch(then="writing the results first") as late:  # a moment's work: a Ctrl-C now waits for it
        learn.export(out / "model.pt", with_opt=True)  # weights, arch, classes, input pipeline: model_file.py
        if learn.recorder.losses and is_main():
            learn.recorder.plot_loss(out / "loss.png")
        say(f"learnloop: wrote {out / 'history.csv'}, {out / 'model.pt'} and {out / 'loss.png'}")
        if config.tensorboard:
            say(f"learnloop: view the curves with: tensorboard --logdir {out / 'tb'}")
        for cb in tracking if is_main() else []:  # other ranks never connect
            say(tracking_line(cb))
    signum = finished_by or late.received
    if signum is not None:
        print(f"learnloop: {signal.Signals(signum).name} came after training had finished; the results above "
              f"were written in full.", file=sys.stderr, flush=True)
        return 128 + signum
    return 0


def run_meta(config: RunConfig) -> dict[str, Any]:
    """What the checkpoint records for a resume to check, config.json or not: data, model, batch size, seed (and
    image size)."""
    meta = {"dataset": data_key(config.dataset), "arch": config.arch, "bs": config.bs, "seed": config.seed}
    if config.start_from or config.pretrained:  # another start, another schedule: another run
        meta.update(start_from=config.start_from or "pretrained", freeze_epochs=config.freeze_epochs)
    return meta if config.dataset in BUILT_IN else {**meta, "size": config.size}


def resume_from(ckpt: Path, meta: dict[str, Any]):
    """The `Resume` callback for OUT/last.ckpt: read and checked against this run's `meta` now, before training."""
    from ..callbacks.checkpoint import Resume

    return Resume(ckpt, meta=meta)


def tracking_cbs(config: RunConfig) -> list:
    """`--mlflow [URI]` and `--wandb [PROJECT]`: an `MLflowCallback` and a `WandbCallback` with the run's settings as
    params; none without the flags."""
    from ..callbacks import MLflowCallback, WandbCallback
    from ..errors import SettingError

    hparams = {"dataset": config.dataset, "arch": config.arch, "sched": config.sched, "seed": config.seed}
    makers = {"mlflow": lambda uri: MLflowCallback(uri, hparams=hparams),
              "wandb": lambda project: WandbCallback(config=hparams, project=project)}
    cbs = []
    for flag, make in makers.items():
        if getattr(config, flag) is None:
            continue
        try:
            cbs.append(make(getattr(config, flag) or None))
        except ImportError as e:  # a missing extra is the user's to fix: one line, like the other usage errors
            raise SettingError(f"--{flag}: {e}") from e
    return cbs


def tracking_line(cb: Any) -> str:
    """Where a tracker logged the run, and how to look at it."""
    if cb.name == "wandb":
        return f"learnloop: W&B run {cb.run_id} (offline runs: upload with `wandb sync wandb/offline-run-*`)"
    return (f"learnloop: MLflow run {cb.run_id}, artifacts in {cb.artifact_uri}; view it with: mlflow ui "
            f"--backend-store-uri {cb.client.tracking_uri} (the UI is in the full `pip install mlflow`)")


def fit_with_schedule(learn, config: RunConfig, cbs: list, out: Path, meta: dict[str, Any] | None = None,
                      resume: Any = None) -> None:
    """Fit for `config.epochs` under the schedule `config.sched`, checkpointing to OUT/last.ckpt (with `meta`);
    `resume`, a `Resume` callback, continues from a checkpoint."""
    from ..callbacks import Checkpoint
    from ..callbacks.progress import FirstBatchClock
    from ..callbacks.schedule import schedule_cbs

    ckpt = Checkpoint(out / "last.ckpt", every_n_batches=config.ckpt_every, meta=meta)
    tuning = config.start_from or config.pretrained
    cbs = [*cbs, *([] if tuning else schedule_cbs(config.sched, config.lr, config.epochs)), ckpt,
           *([resume] if resume else []),
           FirstBatchClock(START, "learnloop: first batch {:.2f} s after start (imports, data, model, loggers)")]
    if tuning:  # fastai's fine_tune: the new head alone, then everything at discriminative lrs
        learn.fine_tune(config.epochs - config.freeze_epochs, base_lr=config.lr, freeze_epochs=config.freeze_epochs,
                        cbs=cbs)
    else:
        learn.fit(config.epochs, lr=config.lr, cbs=cbs)
