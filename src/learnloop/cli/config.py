"""The settings of a run: per-dataset recipes, overridden by the flags."""

from __future__ import annotations

import argparse
from typing import Any

ARCHS = ("simple_cnn", "bn_cnn", "image_cnn")
SCHEDULES = ("onecycle", "step", "cos", "none")  # callbacks.schedule.SCHEDULES, without importing torch

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


def apply_recipe(args: argparse.Namespace) -> None:
    """Fill the settings the flags left out from DATA's recipe."""
    recipe = RECIPES.get(args.dataset, RECIPES["folder"])
    for key, value in recipe.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
