"""ONNX export for serving without Python or learnloop: uint8 NHWC pixels in (scaling and normalisation inside the
graph), class probabilities out, and the classes, input size and colour mode in the model's metadata.

Needs the `onnx` extra (`pip install "learnloop[onnx]"`: onnx, onnxscript)."""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .distributed import unwrap
from .errors import SettingError
from .inference import classes, pipeline
from .nn.module import Module
from .nn.torch_view import to_torch

INPUT, OUTPUT = "pixels", "probs"


@contextmanager
def _quiet_exporters() -> Iterator[None]:
    """The exporters' own notes ("torchvision is not installed. Skipping torchvision::nms", deprecations, progress)
    are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


class Serving(torch.nn.Module):
    """`model` behind its input pipeline: uint8 `(N, H, W, C)` pixels -> floats (/`pixel_max`) -> `Normalize` ->
    model -> softmax."""

    def __init__(self, model: torch.nn.Module, pixel_max: float, mean: list | None, std: list | None) -> None:
        super().__init__()
        self.model, self.pixel_max, self.normalise = model, float(pixel_max), mean is not None
        self.register_buffer("mean", torch.tensor(mean or [0.0]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [1.0]).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / self.pixel_max
        if self.normalise:
            x = (x - self.mean) / self.std
        return self.model(x).softmax(dim=-1)


def serving_model(learn: Any) -> tuple[Serving, dict[str, str], tuple[int, int, int]]:
    """The `Serving` module of `learn` (a CPU copy in eval mode), the ONNX metadata, and the input's (H, W, C)."""
    pipe = pipeline(learn)
    if pipe is None or (pipe.kind == "array" and len(pipe.shape) != 3):
        raise SettingError("ONNX export takes image models: the model file records no image input (photos, or "
                         "arrays of shape (C, H, W)).")
    if pipe.kind == "image":
        (h, w), c, mode, pixel_max = pipe.size, pipe.channels, pipe.mode, 255.0
    else:
        (c, h, w), pixel_max = pipe.shape, pipe.pixel_max or 255.0
        mode = "L" if c == 1 else "RGB"
    model = copy.deepcopy(unwrap(learn.model))
    model = (to_torch(model) if isinstance(model, Module) else model).cpu().eval()
    serving = Serving(model, pixel_max, pipe.mean, pipe.std).eval()
    with torch.no_grad():
        n_classes = serving(torch.zeros(1, h, w, c, dtype=torch.uint8)).shape[-1]
    names = classes(learn) or list(range(n_classes))
    meta = {"classes": json.dumps(names), "input_size": json.dumps([h, w]), "colour_mode": mode,
            "input": f"uint8 (N, {h}, {w}, {c}) pixels, 0..{pixel_max:g}", "output": "class probabilities (N, "
            f"{n_classes})"}
    return serving, meta, (h, w, c)


def export_onnx(learn: Any, path: str | os.PathLike, dynamo: bool = True) -> Path:
    """Write `learn`'s model as ONNX to `path`: input `pixels`, uint8 `(N, H, W, C)` at the model's size; output
    `probs`, `(N, n_classes)`; metadata `classes` (JSON), `input_size` (JSON [H, W]), `colour_mode`. `dynamo`:
    torch's dynamo exporter (onnxscript), falling back to the TorchScript one with a warning for a model it can't
    trace; False: the TorchScript one."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install 'learnloop[onnx]'.") from None
    serving, meta, (h, w, c) = serving_model(learn)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(2, h, w, c, dtype=torch.uint8),)
    failed = None
    with _quiet_exporters():
        if dynamo:
            try:
                torch.onnx.export(serving, example, path, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}, verbose=False)
            except Exception as e:  # a model torch.export can't trace: the TorchScript exporter often can
                failed = e
        if failed is not None or not dynamo:
            torch.onnx.export(serving, example, path, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    if failed is not None:
        warnings.warn(f"torch's dynamo ONNX exporter failed ({type(failed).__name__}: {failed}); the TorchScript "
                      f"exporter wrote {path}.")
    graph = onnx.load(path)
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, path)
    return path
