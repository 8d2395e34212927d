"""The validation input pipeline as plain data, so a model file can carry it: new items are decoded, centre-cropped,
scaled and normalised exactly as the validation set was. `ItemsDataset` applies it to a list of items (the test
loader's dataset)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import DataError
from .dataset import ImageFolder, image_to_tensor
from .images import decode_image
from .transforms import Normalize, ToFloat

READ_ERRORS = (OSError, SyntaxError, ValueError)  # what Pillow raises for unreadable or truncated files


class ImagePipeline:
    """Photos as validation sees them: upright (EXIF), centre-cropped to the aspect of `size` (H, W) and resized
    once in colour `mode`, as uint8 `(C, H, W)`; then per batch `ToFloat` and `Normalize(mean, std)`."""

    kind = "image"

    def __init__(self, size: Sequence[int], mode: str = "RGB", mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, bs: int = 64, batch_tfms: Sequence | None = None) -> None:
        self.size, self.mode, self.bs = (int(size[0]), int(size[1])), mode, bs
        self.mean, self.std = _floats(mean), _floats(std)
        self.batch_tfms = list(batch_tfms) if batch_tfms is not None else [ToFloat(), *self._normalize()]

    def _normalize(self) -> list[Normalize]:
        return [Normalize(self.mean, self.std)] if self.mean is not None else []

    @property
    def channels(self) -> int:
        """1 for grey (`L`), 3 for colour."""
        return 1 if self.mode == "L" else 3

    def load(self, item: Any) -> Tensor:
        """One item as the dataset gives it: a path, PIL image or HWC uint8 array is decoded, cropped and resized
        (uint8 `(C, H, W)`); a tensor is taken as the dataset gave it, already `(C, H, W)` at `size`."""
        if isinstance(item, Tensor):
            if item.shape != (self.channels, *self.size):
                raise ValueError(f"a tensor item is taken as the dataset gives it, {(self.channels, *self.size)} "
                                 f"(C, H, W); got {tuple(item.shape)}. Pass a photo as a path, a PIL image or a "
                                 f"uint8 (H, W, C) numpy array to have it cropped and resized.")
            return item
        if isinstance(item, np.ndarray):
            item = Image.fromarray(item[..., 0] if item.ndim == 3 and item.shape[-1] == 1 else item)
        return image_to_tensor(decode_image(item if isinstance(item, Image.Image) else os.fspath(item),
                                            self.size, self.mode))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a model file."""
        _check_recordable(self.batch_tfms, [ToFloat(), *self._normalize()])
        return {"kind": "image", "size": list(self.size), "mode": self.mode, "resize": "centre-crop", "bs": self.bs,
                "mean": self.mean, "std": self.std}


class ArrayPipeline:
    """Arrays as the dataset holds them, one sample of `shape`: floats as they are, integers divided by `pixel_max`
    (the raw data's maximum, e.g. 255 for MNIST's pixels); images (paths, PIL) are decoded to `shape` and scaled to
    [0, 1]; then per batch `Normalize(mean, std)` when the data was normalised."""

    kind = "array"

    def __init__(self, shape: Sequence[int], dtype: str = "float32", pixel_max: float | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, bs: int = 64,
                 batch_tfms: Sequence | None = None) -> None:
        self.shape, self.dtype, self.pixel_max, self.bs = tuple(int(n) for n in shape), dtype, pixel_max, bs
        self.mean, self.std = _floats(mean), _floats(std)
        self.batch_tfms = list(batch_tfms) if batch_tfms is not None else self._normalize()

    def _normalize(self) -> list[Normalize]:
        return [Normalize(self.mean, self.std)] if self.mean is not None else []

    def load(self, item: Any) -> Tensor:
        """One item as the dataset gives it: `shape` (or `shape` without its channel dim of 1)."""
        if isinstance(item, (str, os.PathLike, Image.Image)):
            if len(self.shape) != 3:
                raise ValueError(f"this model takes arrays of shape {self.shape}, not images; pass an array.")
            mode = "L" if self.shape[0] == 1 else "RGB"
            return image_to_tensor(decode_image(item, self.shape[1:], mode)).float().div_(255)
        x = torch.as_tensor(np.array(item) if isinstance(item, np.ndarray) else item)
        if not x.is_floating_point():
            x = x.float() / self.pixel_max if self.pixel_max else x.float()
        if x.shape != self.shape and (1, *x.shape) == self.shape:
            x = x.unsqueeze(0)
        if x.shape != self.shape:
            raise ValueError(f"this model takes one sample of shape {self.shape} as the dataset gives it; got "
                             f"{tuple(x.shape)}.")
        return x.to(getattr(torch, self.dtype))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a model file."""
        _check_recordable(self.batch_tfms, self._normalize())
        return {"kind": "array", "shape": list(self.shape), "dtype": self.dtype, "pixel_max": self.pixel_max,
                "bs": self.bs, "mean": self.mean, "std": self.std}


Pipeline = ImagePipeline | ArrayPipeline


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in torch.as_tensor(values).reshape(-1)]


def _check_recordable(tfms: Sequence, recorded: Sequence) -> None:
    """ValueError unless `tfms` are what the record rebuilds (`ToFloat`, `Normalize`), in that order."""
    if [repr(t) for t in tfms] != [repr(t) for t in recorded]:
        raise ValueError(f"the valid loader's batch transforms {list(tfms)} can't be written as plain data (a model "
                         f"file records ToFloat and Normalize only): load the file with load_learner(path, model=...) "
                         f"and attach your transforms to the loaders you build, or use learn.save for the weights.")


def pipeline_from_dict(d: dict[str, Any]) -> Pipeline:
    """The pipeline a model file's `input` record describes."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "image":
        d.pop("resize", None)
        return ImagePipeline(**d)
    if kind == "array":
        return ArrayPipeline(**d)
    raise ValueError(f"unknown input kind {kind!r} in the model file: learnloop knows 'image' and 'array'.")


def _dataset_of(loader: Any) -> Any:
    return getattr(loader, "ds", None) or getattr(loader, "dataset", None)


def pipeline_of(dls: Any) -> Pipeline | None:
    """The validation pipeline of `dls` (image folders, arrays), read from its valid loader (else its train loader);
    None for data it can't describe."""
    loader = getattr(dls, "valid", None) or getattr(dls, "train", None)
    ds = _dataset_of(loader)
    tfms, bs = list(getattr(loader, "batch_tfms", ()) or ()), getattr(loader, "bs", None) or 64
    norm = next((t for t in tfms if isinstance(t, Normalize)), None)
    stats = {"mean": norm.mean, "std": norm.std} if norm is not None else {}
    if isinstance(ds, ImageFolder):
        # new items are decoded to uint8, as a uint8 folder gives them: ToFloat first (a no-op on float batches)
        tfms = tfms if tfms[:1] and isinstance(tfms[0], ToFloat) else [ToFloat(), *tfms]
        return ImagePipeline(ds.size, ds.mode, bs=bs, batch_tfms=tfms, **stats)
    x = getattr(ds, "x", None)
    if x is None and getattr(ds, "tensors", None):  # torch's TensorDataset
        x = ds.tensors[0]
    if isinstance(x, Tensor):
        return ArrayPipeline(x.shape[1:], str(x.dtype).removeprefix("torch."), getattr(ds, "pixel_max", None),
                             bs=bs, batch_tfms=tfms, **stats)
    return None


class ItemsDataset:
    """`(x, y)` for each of `items` (paths, PIL images, arrays) loaded by `pipeline`; y is `labels[i]`, else 0.

    With `skip_errors`, an item that can't be read gives zeros and y = -1 (its path is in `items`), so one bad file
    does not stop the others; otherwise it raises a `DataError` naming it."""

    def __init__(self, items: Sequence[Any], pipeline: Pipeline, labels: Sequence[int] | None = None,
                 skip_errors: bool = False) -> None:
        if labels is not None and len(labels) != len(items):
            raise ValueError(f"got {len(labels)} labels for {len(items)} items: pass one label per item.")
        self.items, self.pipeline, self.labels, self.skip_errors = items, pipeline, labels, skip_errors

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        y = 0 if self.labels is None else int(self.labels[i])
        try:
            return self.pipeline.load(self.items[i]), y
        except READ_ERRORS as e:
            if not self.skip_errors:
                raise DataError(f"cannot read {_name(self.items[i])} ({type(e).__name__}: {e}); replace or delete "
                                f"it, then run again.") from None
            pipe = self.pipeline
            shape = (pipe.channels, *pipe.size) if pipe.kind == "image" else pipe.shape
            dtype = torch.uint8 if pipe.kind == "image" else getattr(torch, pipe.dtype)
            return torch.zeros(shape, dtype=dtype), -1


def _name(item: Any) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"a {type(item).__name__} item"
