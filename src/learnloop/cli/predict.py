"""`learnloop predict MODEL ITEM...`: the most likely label of each image, printed or written as a CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..errors import UserError
from .flags import flag_number
from .model_flags import add_model_flags, load_model, share_cores
from .startup import started

NAME = "predict"


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`predict` and its flags."""
    sub = commands.add_parser(NAME, help="the label of each image, by a trained model",
                              epilog="An image that can't be read is named on stderr and the others are still "
                              "predicted; the exit status is then 1.")
    add_model_flags(sub)
    sub.add_argument("items", metavar="ITEM", nargs="+", help="image files, or folders (searched recursively; hidden "
                     "files and files that are not images skipped)")
    sub.add_argument("--out", type=Path, metavar="FILE.csv", help="write the CSV columns path,label,prob (and the "
                     "next labels with --top) to FILE.csv instead of printing")
    sub.add_argument("--top", type=flag_number(int, 1), default=1, metavar="K",
                     help="also give the next K-1 most likely labels and their probabilities (default 1)")
    return sub


def run(args: argparse.Namespace) -> int:
    """Predict every image; 1 when some could not be read, else 0."""
    from ..distributed import check_device
    from ..inference import image_items, predict_items

    check_device(args.device)
    learn = load_model(args.model, args.device)
    share_cores(args.workers)
    items = image_items(args.items)
    if not items:
        raise UserError(f"no images in {', '.join(args.items)} ({'.jpg, .png, ...'}, hidden files skipped).")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    started()
    f = open(args.out, "w", newline="") if args.out is not None else None
    try:
        writer = csv.writer(f) if f is not None else None
        if writer is not None:
            more = [f"{k}{i}" for i in range(2, args.top + 1) for k in ("label", "prob")]
            writer.writerow(["path", "label", "prob", *more])
        failed = 0
        for item, result in predict_items(learn, items, top=args.top, bs=args.bs, n_workers=args.workers):
            if isinstance(result, str):
                failed += 1
                print(f"learnloop: cannot read {item}: {result}", file=sys.stderr, flush=True)
                continue
            cells = [v for label, prob in result for v in (label, f"{prob:.6f}")]
            if writer is not None:
                writer.writerow([item, *cells])
            else:
                print("  ".join([item, *cells]), flush=False)
    finally:
        if f is not None:
            f.close()
    done = len(items) - failed
    if args.out is not None:
        print(f"learnloop: wrote {done} predictions to {args.out}")
    if failed:
        print(f"learnloop: {failed} of {len(items)} images could not be read (named above).", file=sys.stderr)
    return 1 if failed else 0
