"""Activation statistics: per layer and training batch, the output's mean, std and share near zero."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..nn.hooks import LayerStats
from .core import Callback

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ActivationStats(Callback):
    """Records each layer's output mean, std and share of |x| < `near_zero` over training batches.

    `modules` defaults to the model's leaf layers that have parameters (as fastai's); `every=n` records
    every n-th training batch. Works on learnloop and torch modules (`learnloop.nn.LayerStats` hooks),
    and keeps the figures on the device until read. After a fit: `stats[name]` is a (batches, 3)
    tensor of mean, std, near-zero share; `plot()` draws them.
    """

    order = 0
    during_lr_find = False

    def __init__(self, modules: Iterable[Any] | None = None, every: int = 1, near_zero: float = 0.05):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}.")
        self.modules, self.every, self.near_zero = modules, every, near_zero
        self.names: list[str] = []
        self.layer_stats: LayerStats | None = None

    def _layers(self) -> list[tuple[str, Any]]:
        named = list(self.model.named_modules())
        if self.modules is not None:
            wanted = {id(m) for m in self.modules}
            return [(str(name), m) for name, m in named if id(m) in wanted]
        return [(str(name), m) for name, m in named if not list(m.children()) and any(True for _ in m.parameters())]

    def before_fit(self):
        layers = self._layers()
        if not layers:
            raise ValueError(
                "ActivationStats found no layers to hook (none given, or the model has no leaf layers with "
                "parameters): pass the modules to watch, e.g. ActivationStats(modules=[model[0], model[2]])."
            )
        self.names = [name or type(m).__name__ for name, m in layers]  # the root module's name is ""
        self.layer_stats = LayerStats([m for _, m in layers], eps=self.near_zero)

    def before_batch(self):
        self.layer_stats.enabled = self.training and self.iter % self.every == 0

    def after_fit(self):
        if self.layer_stats is not None:
            self.layer_stats.remove()

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """Per layer name, a (batches, 3) CPU tensor: output mean, std and near-zero share."""
        if self.layer_stats is None:
            return {}
        return {
            name: torch.stack(records).cpu() if records else torch.empty(0, 3)
            for name, records in zip(self.names, self.layer_stats.records)
        }

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Mean, std and near-zero share per layer over batches (see `learnloop.plots.plot_activation_stats`)."""
        from ..plots import plot_activation_stats

        return plot_activation_stats(self, path)
