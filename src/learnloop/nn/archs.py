"""Architectures by name: builders registered here tag the models they build with `arch_spec` (name and keyword
arguments, plain data), so a model file can say how to rebuild its model and `build_arch` can do it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

ARCHS: dict[str, Callable[..., Any]] = {}  # name -> builder, for `build_arch`


def _plain(value: Any) -> Any:
    """`value` as what `torch.load(weights_only=True)` reads back: tuples become lists."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"arch argument {value!r} is a {type(value).__name__}: an architecture is recorded by name and "
                    f"plain arguments (numbers, strings, lists), so a model file can rebuild it without running code.")


def register_arch(builder: Callable[..., Any]) -> Callable[..., Any]:
    """Register `builder` under its name; every model it builds gets `model.arch_spec = {"name", "kwargs"}`."""
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        model = builder(*bound.args, **bound.kwargs)
        model.arch_spec = {"name": builder.__name__, "kwargs": _plain(dict(bound.arguments))}
        return model

    ARCHS[builder.__name__] = build
    return build


def arch_of(model: Any) -> dict[str, Any] | None:
    """The `{"name", "kwargs"}` a registered builder tagged `model` with (through DDP, torch views and compile);
    None for a model built some other way."""
    for attr in ("module", "source", "_orig_mod"):  # DDP, learnloop's torch view, torch.compile
        model = getattr(model, attr, model)
    spec = getattr(model, "arch_spec", None)
    return spec if isinstance(spec, dict) else None


def build_arch(spec: dict[str, Any], **overrides: Any) -> Any:
    """A new model (fresh weights) from `{"name", "kwargs"}` as `arch_of` gives it; `overrides` replace kwargs,
    e.g. `n_classes` for a new head."""
    name = spec.get("name")
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}: learnloop builds {', '.join(sorted(ARCHS))}. A model of "
                         f"your own is rebuilt by your code: build it and pass it as model=.")
    return ARCHS[name](**{**spec.get("kwargs", {}), **overrides})
