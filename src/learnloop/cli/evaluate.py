"""`learnloop evaluate MODEL FOLDER`: loss, accuracy and per-class figures on a labelled folder of images, and
metrics.json, confusion.png and top_losses.png in --out."""

from __future__ import annotations

import argparse
from pathlib import Path

from .model_flags import add_model_flags, load_model, share_cores
from .startup import started

NAME = "evaluate"


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`evaluate` and its flags."""
    sub = commands.add_parser(NAME, help="loss, accuracy and per-class figures on a labelled folder of images")
    add_model_flags(sub)
    sub.add_argument("folder", metavar="FOLDER", help="FOLDER/<label>/*.jpg, or a root holding val/ (or valid/, "
                     "test/) laid out so")
    sub.add_argument("--out", type=Path, help="where to write metrics.json, confusion.png and top_losses.png "
                     "(default: eval/ beside the model file)")
    return sub


def run(args: argparse.Namespace) -> int:
    """Print the figures and write them to OUT."""
    from ..callbacks.logging import ensure_writable_dir
    from ..distributed import check_device
    from ..evaluate import evaluate, format_report, write_report
    from ..model_file import model_path

    check_device(args.device)
    learn = load_model(args.model, args.device)
    share_cores(args.workers)
    out = ensure_writable_dir(args.out or model_path(args.model).parent / "eval", "--out")
    started()
    report = evaluate(learn, args.folder, bs=args.bs, n_workers=args.workers)
    print(format_report(report))
    written = write_report(learn, report, out)
    print(f"learnloop: wrote {', '.join(map(str, written))}")
    return 0
