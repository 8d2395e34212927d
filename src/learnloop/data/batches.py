"""Data as the Learner takes it: loaders (`as_dataloaders`), and batches as `(xb, yb)`: dict batches (Hugging Face
datasets, many torch datasets) split into input and target, and batches moved to a device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from .loader import DataLoaders

TARGET_KEYS = ("label", "labels", "target", "targets", "y")  # what datasets call the target, most common first
Keys = str | Sequence[str] | None


def batch_keys(dls: Any) -> tuple[Keys, str | None]:
    """`(x_key, y_key)` of a learner's loaders (None, None: found from the usual names)."""
    return getattr(dls, "x_key", None), getattr(dls, "y_key", None)


def split_batch(batch: Any, x_key: Keys = None, y_key: str | None = None) -> Any:
    """`(xb, yb)` of a batch: a tuple or list as it is; a dict split into the target (`y_key`, else the one key
    named like a target: `label`, `labels`, `target`, `targets`, `y`) and the input (`x_key`, else the one other
    tensor); `x_key` a list of keys gives the model a dict of those (for models that take keyword inputs)."""
    if type(batch) in (tuple, list) or not isinstance(batch, Mapping):
        return batch
    keys = list(batch)
    y_key = y_key if y_key is not None else _target_key(keys)
    if y_key not in batch:
        raise KeyError(f"y_key={y_key!r} is not a key of the batch; its keys are {keys}. Pass "
                       f"DataLoaders(..., y_key=...) naming one of them.")
    return _input(batch, keys, x_key, y_key), batch[y_key]


def _target_key(keys: list[str]) -> str:
    found = [k for k in TARGET_KEYS if k in keys]
    if len(found) != 1:
        what = "no key named like a target" if not found else f"several target-like keys {found}"
        raise ValueError(f"a dict batch with keys {keys} has {what} ({', '.join(TARGET_KEYS)}): say which key is the "
                         "target, e.g. DataLoaders(train_dl, valid_dl, y_key='label').")
    return found[0]


def _input(batch: Mapping, keys: list[str], x_key: Keys, y_key: str) -> Any:
    if x_key is None:
        tensors = [k for k in keys if k != y_key and isinstance(batch[k], Tensor)]
        if len(tensors) != 1:
            what = "no tensor besides the target" if not tensors else f"several input tensors {tensors}"
            raise ValueError(f"a dict batch with keys {keys} (target {y_key!r}) has {what}: say which is the input, "
                             "e.g. DataLoaders(train_dl, valid_dl, x_key='image'), or x_key=['input_ids', "
                             "'attention_mask'] to give the model a dict of them.")
        x_key = tensors[0]
    missing = [k for k in ([x_key] if isinstance(x_key, str) else x_key) if k not in batch]
    if missing:
        raise KeyError(f"x_key {missing} not in the batch; its keys are {keys}.")
    return batch[x_key] if isinstance(x_key, str) else {k: batch[k] for k in x_key}


def to_device(batch: Any, device: Any) -> Any:
    """`batch` with its tensors (in tuples, lists and dicts too) on `device`, copied without blocking."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return [to_device(b, device) for b in batch]
    return batch


def as_dataloaders(dls: Any) -> Any:
    """What a Learner trains on: `dls` itself when it has `.train` (and `.valid`); a `(train_dl, valid_dl)` tuple or
    list of two loaders (valid may be None) as DataLoaders; anything else (a loader, a list of batches) as the train
    loader, with no validation."""
    if hasattr(dls, "train"):
        return dls
    if isinstance(dls, (tuple, list)) and len(dls) == 2 and _is_loader(dls[0]) and (dls[1] is None or _is_loader(dls[1])):
        return DataLoaders(*dls)
    return DataLoaders(dls, None)


def _is_loader(obj: Any) -> bool:
    # a loader, not a batch: a (xb, yb) pair in a list of batches is a tuple of tensors
    return hasattr(obj, "__iter__") and not isinstance(obj, (Tensor, tuple, list, Mapping, str))
