"""Activation statistics: per layer and training batch, the output's mean, std and share near zero."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from .core import Callback

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATS = ("mean", "std", "near_zero")


class ActivationStats(Callback):
    """Records each layer's output mean, std and share of |x| < `near_zero` over training batches.

    `modules` defaults to the model's leaf layers that have parameters (as fastai's); `every=n` records
    every n-th training batch. Stats stay on the device until the end of each training phase. After a
    fit: `stats[name]` is a (batches, 3) tensor of mean, std, near-zero share; `plot()` draws them.
    """

    order = 0

    def __init__(self, modules: Iterable[torch.nn.Module] | None = None, every: int = 1, near_zero: float = 0.05):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}.")
        self.modules, self.every, self.near_zero = modules, every, near_zero
        self.stats: dict[str, torch.Tensor] = {}
        self.handles: list = []

    def _layers(self) -> list[tuple[str, torch.nn.Module]]:
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(
                f"ActivationStats needs a torch.nn.Module for now (it uses torch's forward hooks), got "
                f"{type(self.model).__name__}."
            )
        named = list(self.model.named_modules())
        if self.modules is not None:
            wanted = {id(m) for m in self.modules}
            return [(name, m) for name, m in named if id(m) in wanted]
        return [(name, m) for name, m in named if not list(m.children()) and any(True for _ in m.parameters())]

    def before_fit(self):
        layers = self._layers()
        if not layers:
            raise ValueError(
                "ActivationStats found no layers to hook (none given, or the model has no leaf layers with "
                "parameters): pass the modules to watch, e.g. ActivationStats(modules=[model[0], model[2]])."
            )
        self.names = [name or type(m).__name__ for name, m in layers]  # the root module's name is ""
        self.stats = {name: torch.empty(0, len(STATS)) for name in self.names}
        self.pending: dict[str, list[torch.Tensor]] = {name: [] for name in self.names}
        # torch's forward hooks for now; learnloop.nn.hooks.Hook will take this over once merged.
        self.handles = [m.register_forward_hook(self._hook_fn(name)) for name, (_, m) in zip(self.names, layers)]

    def _hook_fn(self, name: str):
        def hook(module, inputs, output):
            if self.training and self.iter % self.every == 0 and isinstance(output, torch.Tensor):
                out = output.detach().float()
                near_zero = (out.abs() < self.near_zero).float().mean()
                self.pending[name].append(torch.stack([out.mean(), out.std(), near_zero]))

        return hook

    def _flush(self):
        # One device->host copy per layer per epoch instead of one per batch.
        for name, values in getattr(self, "pending", {}).items():
            if values:
                self.stats[name] = torch.cat([self.stats[name], torch.stack(values).cpu()])
                values.clear()

    after_train = _flush

    def after_fit(self):
        self._flush()  # a fit that raised mid-epoch skipped after_train
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Mean, std and near-zero share per layer over batches (see `learnloop.plots.plot_activation_stats`)."""
        from ..plots import plot_activation_stats

        return plot_activation_stats(self, path)
