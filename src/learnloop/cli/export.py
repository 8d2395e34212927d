"""`learnloop export MODEL --onnx FILE`: the model as ONNX, for serving without Python or learnloop."""

from __future__ import annotations

import argparse
from pathlib import Path

from .model_flags import add_model_flags, load_model
from .startup import started

NAME = "export"


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`export` and its flags."""
    sub = commands.add_parser(NAME, help="write the model as ONNX (uint8 pixels in, class probabilities out)")
    add_model_flags(sub, loader_flags=False)
    sub.add_argument("--onnx", type=Path, required=True, metavar="FILE",
                     help="the .onnx file to write: input uint8 (N, H, W, C) pixels at the model's size, output "
                     "class probabilities; classes, input size and colour mode in its metadata")
    return sub


def run(args: argparse.Namespace) -> int:
    """Write the ONNX file."""
    from ..callbacks.logging import ensure_writable_dir
    from ..errors import SettingError
    from ..export import export_onnx

    learn = load_model(args.model, "cpu")
    ensure_writable_dir(args.onnx.parent, "--onnx")
    started()
    try:
        path = export_onnx(learn, args.onnx)
    except ImportError as e:  # a missing extra is the user's to fix
        raise SettingError(str(e)) from None
    print(f"learnloop: wrote {path}")
    return 0
