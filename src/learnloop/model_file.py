"""The model file: everything inference needs, as plain data that `torch.load(path, weights_only=True)` reads and
that runs no code when loaded.

Keys (`format` "learnloop.model", `format_version` 2):
- `model`: the state_dict; `opt`: the optimizer's (only when saved with it);
- `arch`: `{"name": "image_cnn", "kwargs": {...}}` for learnloop's architectures (`learnloop.nn.build_arch` rebuilds
  it), None for a model built by other code (then `load_learner(path, model=...)` takes the model);
- `classes`: the label of each output (None when the data had no vocab: labels are then the indices);
- `input`: the validation pipeline (`learnloop.data.pipeline`): for photos `{"kind": "image", "size": [H, W],
  "mode": "RGB", "resize": "centre-crop", "mean", "std", "bs"}`, for arrays `{"kind": "array", "shape", "dtype",
  "pixel_max", "mean", "std", "bs"}`; None when the data was of another kind;
- `format`, `format_version`, `learnloop_version`, `torch_version`.
Files written before version 2 hold `model` (and `opt`, `classes`) only: `Learner.load` reads them, and `load_learner`
with `model=`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data.pipeline import Pipeline, pipeline_from_dict, pipeline_of
from .distributed import unwrap
from .errors import CheckpointError, MissingFileError
from .nn.archs import arch_of, build_arch
from .saving import load_checkpoint, save_weights

FORMAT, VERSION = "learnloop.model", 2
MODEL_FILE = "model.pt"  # what `learnloop fit` writes into its --out folder


def model_record(model: Any, dls: Any = None, classes: list | None = None,
                 pipeline: Pipeline | None = None) -> dict[str, Any]:
    """The model file's fields beside the weights, for `model` trained on `dls`: arch, classes, input pipeline."""
    pipeline = pipeline or (pipeline_of(dls) if dls is not None else None)
    if classes is None and dls is not None:
        classes = getattr(dls, "vocab", None)
    return {"format": FORMAT, "format_version": VERSION, "arch": arch_of(model),
            "classes": None if classes is None else list(classes),
            "input": None if pipeline is None else pipeline.to_dict(),
            "learnloop_version": __version__, "torch_version": str(torch.__version__)}


def save_model(model: Any, path: str | os.PathLike, dls: Any = None, opt: Any = None,
               classes: list | None = None, pipeline: Pipeline | None = None) -> Path:
    """Write the model file (atomically; under torchrun rank 0 alone): weights, `model_record`, and `opt`'s state
    when given (to train on from it)."""
    return save_weights(unwrap(model), opt, path, model_record(model, dls, classes, pipeline))


def model_path(path: str | os.PathLike) -> Path:
    """The model file itself: `path`, or `path/model.pt` for a run folder."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The model file at `path` (a file, or a run folder holding model.pt) as a dict, read safely
    (`weights_only=True`); the fields of version 2 are None in older files. A `CheckpointError` names what is wrong."""
    file = model_path(path)
    if not file.is_file():
        where = f"{path} holds no {MODEL_FILE}" if Path(path).is_dir() else f"there is no model file {path}"
        raise MissingFileError(f"{where}: pass a run folder (as `learnloop fit` writes it) or its {MODEL_FILE}, or "
                               f"a file written by learn.export().")
    state = load_checkpoint(file)
    if not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{file} holds no model weights (keys: {sorted(state)}): pass the model.pt that "
                              f"`learnloop fit` or learn.export() wrote, not a training checkpoint.")
    for key in ("arch", "classes", "input"):
        state.setdefault(key, None)
    state.setdefault("format_version", 1)
    state["path"] = str(file)
    return state


def build_model(record: dict[str, Any], model: Any = None) -> Any:
    """The model of a model file's `record` (`read_model_file`) with its weights: rebuilt from `arch`, or `model`
    (your own, of the same architecture) loaded with them."""
    if model is None:
        if record.get("arch") is None:
            raise CheckpointError(f"{record.get('path', 'the model file')} holds weights but not how to build the "
                                  f"model (it was not made by one of learnloop's architectures, or was written "
                                  f"before they were recorded): build the same model in your code and pass it, "
                                  f"load_learner(path, model=model).")
        model = build_arch(record["arch"])
    unwrap(model).load_state_dict(record["model"])
    return model


def input_pipeline(record: dict[str, Any]) -> Pipeline | None:
    """The validation pipeline recorded in a model file, or None when it has none."""
    return None if record.get("input") is None else pipeline_from_dict(record["input"])
