"""Metrics: functions `f(preds, targets) -> scalar tensor` (averaged over an epoch's batches, weighted by batch size),
or objects with `update`/`compute`/`reset` such as torchmetrics' (updated per batch, computed once per epoch), and
the names their columns get."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import torch


def accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of samples whose highest-scoring class is the target."""
    return (preds.argmax(dim=-1) == targets).float().mean()


def error_rate(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(preds, targets)


def top_k_accuracy(k: int = 5) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A metric: share of samples whose target is among the `k` highest-scoring classes."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")

    def metric(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        top = preds.topk(min(k, preds.shape[-1]), dim=-1).indices
        return (top == targets.unsqueeze(-1)).any(dim=-1).float().mean()

    metric.__name__ = f"top_{k}_accuracy"
    return metric


# -- how the Recorder reads a metric -------------------------------------------------------------
Metrics = Iterable[Any] | Mapping[str, Any] | None


def metric_list(metrics: Metrics) -> list[Any]:
    """The `metrics` a Learner takes, as a list: a dict `{name: metric}` becomes `(name, metric)` pairs."""
    if metrics is None:
        return []
    return list(metrics.items()) if isinstance(metrics, Mapping) else list(metrics)


def is_named(metric: Any) -> bool:
    """Whether `metric` is a `(name, metric)` pair: a metric under a column name of your choosing."""
    return isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str)


def unnamed(metric: Any) -> Any:
    """The metric itself, out of a `(name, metric)` pair."""
    return metric[1] if is_named(metric) else metric


def is_stateful(metric: Any) -> bool:
    """Whether `metric` accumulates over an epoch (`update`, `compute`, `reset`: a torchmetrics `Metric`)."""
    metric = unnamed(metric)
    return all(callable(getattr(metric, m, None)) for m in ("update", "compute", "reset"))


def snake_case(name: str) -> str:
    """`MulticlassF1Score` -> `multiclass_f1_score`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def metric_name(metric: Any) -> str:
    """A metric's column name: the name of a `(name, metric)` pair; else its own `name` or `__name__`; a partial's
    function's name; else its class's name in snake_case (`MulticlassF1Score()` -> `multiclass_f1_score`)."""
    if is_named(metric):
        return metric[0]
    while isinstance(metric, partial):
        metric = metric.func
    own = getattr(metric, "__name__", None)
    if not isinstance(own, str):
        own = getattr(metric, "name", None)
    return own if isinstance(own, str) and own else snake_case(type(metric).__name__)
