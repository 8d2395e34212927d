"""`learnloop lr-find DATA`: run the LR finder on the recipe's Learner, print the suggestions, write the plot."""

from __future__ import annotations

import argparse

from .build import make_learner
from .config import resolve
from .flags import add_run_flags
from .startup import started

NAME = "lr-find"


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`lr-find` and its flags."""
    sub = commands.add_parser(NAME, help="run the LR finder, print the suggestion, write the plot")
    add_run_flags(sub)
    return sub


def run(args: argparse.Namespace) -> int:
    """Print the suggestions and write OUT/lr_find.png."""
    config = resolve(args)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    from ..callbacks.logging import ensure_writable_dir  # torch: --print-config answers without it
    from ..distributed import check_device

    check_device(config.device)
    path = ensure_writable_dir(args.out, "--out") / "lr_find.png"  # checked before the finder runs
    learn = make_learner(config, progress=False)
    started()
    result = learn.lr_find()
    result.plot(path)
    if result.suggestion != result.suggestion:  # NaN: the loss never fell, and the finder's warning says what to try
        print(f"no suggested lr (plot: {path})")
        return 0
    for rule, lr in result.suggestions.items():
        print(f"{rule:>10}: {lr:.3g}")
    print(f"suggested lr: {result.suggestion:.3g} (plot: {path})")
    return 0
