"""Metrics: functions `f(preds, targets) -> scalar tensor`, named by their `__name__`."""

from __future__ import annotations

from collections.abc import Callable

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
