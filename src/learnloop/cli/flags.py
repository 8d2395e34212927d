"""The parser's parts: one-line errors for bad flags, number checks, and the flags that the commands which train
on a dataset share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ARCHS, OPTIMIZERS
from .output import print_error

USER_ERROR = 2  # exit status of a user mistake, as argparse's


class Parser(argparse.ArgumentParser):
    """argparse, reporting a bad flag in the same one line as every other user mistake."""

    def error(self, message: str):
        print_error(f"{message} (see '{self.prog} --help')")
        self.exit(USER_ERROR)


def flag_number(convert: type, minimum: float, above: bool = False) -> Callable[[str], Any]:
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


def add_run_flags(sub: argparse.ArgumentParser) -> None:
    """DATA and the flags that set its run's config (each `dest` is a RunConfig field; left out, None: the recipe's
    value), --out, --print-config and --debug: the flags of `fit` and `lr-find`."""
    sub.add_argument("dataset", metavar="DATA", help="digits | mnist | PATH to an image folder")
    sub.add_argument("--data", metavar="FILE", help="the mnist .npz (default: $LEARNLOOP_DATA/mnist.npz, "
                     "else ~/.cache/learnloop/mnist.npz)")
    sub.add_argument("--arch", metavar="NAME", help=f"model: {' | '.join(ARCHS)}, or a torchvision/timm model "
                     "(resnet18, efficientnet_b0, ...) when those are installed (default per dataset: digits "
                     "simple_cnn, mnist bn_cnn, image folders image_cnn)")
    sub.add_argument("--pretrained", action="store_true", default=None, help="a torchvision/timm --arch with its "
                     "published weights (downloaded once into their cache), trained with fine_tune as --from is")
    sub.add_argument("--bs", type=flag_number(int, 1), help="batch size (default per dataset)")
    sub.add_argument("--size", type=flag_number(int, 1), help="image size for image folders (default 64)")
    sub.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                     help="image folders: random resized crop, flip and colour jitter while training (default on)")
    sub.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                     help="image folders: no horizontal flips (for digits, text: where a mirror changes the label)")
    sub.add_argument("--opt", choices=OPTIMIZERS, help="optimizer (default per dataset: image folders adamw, else sgd)")
    sub.add_argument("--momentum", type=flag_number(float, 0), help="SGD momentum (default per dataset: mnist 0.9)")
    sub.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                     help="SGD: Nesterov momentum (default per dataset: on for mnist)")
    sub.add_argument("--wd", type=flag_number(float, 0), help="weight decay (default per dataset: mnist 5e-4, "
                     "image folders 0.01, digits 0)")
    sub.add_argument("--label-smoothing", type=flag_number(float, 0), metavar="EPS",
                     help="label smoothing of the cross-entropy (default per dataset: 0.1, digits 0)")
    sub.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="channels-last convolutions (default per dataset: on for mnist)")
    sub.add_argument("--workers", type=flag_number(int, 0), help="DataLoader worker processes (default 0)")
    sub.add_argument("--device", help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    sub.add_argument("--seed", type=int, help="random seed (default 0)")
    sub.add_argument("--out", type=Path, help="output folder (default runs/<DATA>)")
    sub.add_argument("--print-config", action="store_true", help="print the run's settings (DATA's recipe, the "
                     "flags over it; with --resume the saved ones) as OUT/config.json would hold them, and exit")
    add_debug_flag(sub)


def add_debug_flag(sub: argparse.ArgumentParser) -> None:
    """--debug: every command has it."""
    sub.add_argument("--debug", action="store_true", help="show the full traceback of any error "
                     "(also LEARNLOOP_DEBUG=1)")
