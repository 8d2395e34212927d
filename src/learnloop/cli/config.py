"""The settings of a run, in one typed place: `RunConfig`. A run's config is its dataset's recipe (`RECIPES`),
overridden by the flags given; `fit` saves it as OUT/config.json, and `fit --resume` continues with it.

A new setting is a field here (with its default and a comment), a flag of the same name (`dest`) in
`flags.add_run_flags` or the command's `add_parser` if users should set it, and its use where the run is built.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UserError

ARCHS = ("simple_cnn", "bn_cnn", "image_cnn")  # learnloop's own; --arch also takes torchvision/timm names
SCHEDULES = ("onecycle", "step", "cos", "none")  # callbacks.schedule.SCHEDULES, without importing torch
OPTIMIZERS = ("sgd", "adamw")
BUILT_IN = ("digits", "mnist")  # datasets by name; anything else is an image folder


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a `learnloop fit` or `lr-find` run: data, model, optimizer, schedule, logging."""

    # the data and the model
    dataset: str = "digits"  # digits | mnist | an image folder, as given (saved as its absolute path)
    data: str | None = None  # the mnist .npz (None: $LEARNLOOP_DATA/mnist.npz, else ~/.cache/learnloop/mnist.npz)
    size: int = 64  # image folders: the side images are resized to
    augment: bool = False  # image folders: random resized crop, flip and colour jitter while training
    flip: bool = True  # image folders, with augment: horizontal flips
    arch: str = "simple_cnn"  # one of ARCHS, or a torchvision/timm model name (nn.hub)
    pretrained: bool = False  # a torchvision/timm arch with its published weights, trained with fine_tune
    start_from: str | None = None  # --from: an earlier run (its folder or model.pt) whose body this run fine-tunes
    freeze_epochs: int = 1  # with start_from or pretrained: the first epochs train the new head alone
    # the training
    epochs: int = 5
    lr: float = 0.5  # the peak lr under onecycle
    bs: int = 32
    sched: str = "onecycle"  # one of SCHEDULES
    opt: str = "sgd"  # one of OPTIMIZERS
    momentum: float = 0.0  # SGD's (cycled 0.95-0.85 by onecycle when not 0)
    nesterov: bool = False  # SGD's
    wd: float = 0.0  # weight decay (decoupled with adamw)
    label_smoothing: float = 0.0
    channels_last: bool = False  # channels-last convolutions (faster on CPU for bn_cnn)
    seed: int = 0
    # where it runs and what it reports
    device: str | None = None  # None: cuda if available, else cpu
    workers: int = 0  # DataLoader worker processes
    ckpt_every: int | None = None  # checkpoint every N batches (None: every epoch)
    log_every: float = 30.0  # seconds between progress lines when the output is not a terminal (0: never)
    tensorboard: bool = True  # write OUT/tb
    mlflow: str | None = None  # log to MLflow: None no, "" the default store, else a tracking URI
    wandb: str | None = None  # log to W&B: None no, "" $WANDB_PROJECT, else a project

    def to_json(self) -> str:
        """The config as JSON, one setting a line, as OUT/config.json holds it: an image folder as its absolute
        path, so that a resume finds it from any working directory."""
        return json.dumps({**asdict(self), "dataset": data_key(self.dataset)}, indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config to `path` atomically: a reader sees the old file or the new one, never half."""
        from ..saving import atomic_write  # imports torch: --print-config and --help answer without it

        return atomic_write(path, lambda f: f.write(self.to_json().encode()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """The config saved at `path`; a CheckpointError naming the problem when it can't be used."""
        try:
            saved = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"can't read the run's settings {path}: {e}") from None
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(saved) - names) if isinstance(saved, dict) else None
        if unknown is None or unknown:
            what = f"unknown settings {', '.join(unknown)}" if unknown else "not a JSON object"
            raise CheckpointError(f"{path} is not a learnloop run config ({what}); fix or delete it, or start a "
                                  f"new run with --overwrite.")
        return cls(**saved)  # settings added since it was saved take their defaults


# Per-dataset defaults, overridden by the flags; keys are RunConfig fields.
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
# what a resumed run may change: where it runs, what it reports, and more epochs (a warning: the schedule
# then differs from the one the checkpoint was made under); not what it computes
MAY_CHANGE_ON_RESUME = frozenset({"epochs", "device", "workers", "log_every", "tensorboard", "mlflow", "wandb",
                                  "ckpt_every"})


def is_folder(dataset: str) -> bool:
    """Whether DATA names an image folder rather than a built-in dataset."""
    return dataset not in BUILT_IN and Path(dataset).is_dir()


def data_key(dataset: str) -> str:
    """DATA as a resume compares it: an image folder by its absolute path, a built-in dataset by name."""
    return str(Path(dataset).resolve()) if is_folder(dataset) else dataset


def recipe_config(dataset: str, **settings: Any) -> RunConfig:
    """The config of DATA's recipe with `settings` over it."""
    return RunConfig(**{**RECIPES[dataset if dataset in BUILT_IN else "folder"], **settings, "dataset": dataset})


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave: each flag whose `dest` is a RunConfig field and that was passed."""
    flags = vars(args)
    return {f.name: flags[f.name] for f in fields(RunConfig) if flags.get(f.name) is not None and f.name != "dataset"}


def resolve(args: argparse.Namespace, saved: RunConfig | None = None) -> RunConfig:
    """The run's config: DATA's recipe with the flags over it; with `saved` (a resumed run's), that config, in which
    the flags may change only MAY_CHANGE_ON_RESUME: any other difference is a UserError listing them."""
    given = given_settings(args)
    if args.dataset in BUILT_IN:
        for name, flag in (("augment", "--augment" if given.get("augment") else "--no-augment"), ("flip", "--no-flip")):
            if name in given:
                raise UserError(f"{flag} applies to image folders only, not to {args.dataset}; drop it.")
    config = recipe_config(args.dataset, **given)
    if saved is None:
        return config
    differ = [f"{name} {value!r} (saved: {getattr(saved, name)!r})" for name, value in given.items()
              if name not in MAY_CHANGE_ON_RESUME and value != getattr(saved, name)]
    if data_key(config.dataset) != data_key(saved.dataset):
        differ.insert(0, f"DATA {data_key(config.dataset)!r} (saved: {saved.dataset!r})")
    if differ:
        raise UserError(f"--resume continues a run with the settings it was started with, and these differ: "
                        f"{'; '.join(differ)}. Drop those flags (see them all with --print-config), or start a new run "
                        f"with --overwrite or another --out.")
    changes = {name: value for name, value in given.items() if name in MAY_CHANGE_ON_RESUME}
    return replace(saved, dataset=config.dataset, **changes)
