"""Forward hooks on learnloop Modules and torch.nn.Modules alike, and a layer-statistics recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .module import Module

__all__ = ["Hook", "Hooks", "LayerStats"]

HookFn = Callable[[Any, tuple, Any], Any]


class Hook:
    """Calls `fn(module, inputs, output)` after each forward of `module` until `.remove()`."""

    def __init__(self, module: Module | torch.nn.Module, fn: HookFn):
        self.module = module
        self.handle = module.register_forward_hook(fn)

    def remove(self) -> None:
        """Stop calling `fn`."""
        self.handle.remove()

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Hooks(list):
    """One `Hook(module, fn)` per module; removes them all on `.remove()` or leaving a `with`."""

    def __init__(self, modules: Iterable[Module | torch.nn.Module], fn: HookFn):
        super().__init__(Hook(m, fn) for m in modules)

    def remove(self) -> None:
        """Remove every hook."""
        for hook in self:
            hook.remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class LayerStats(Hooks):
    """Records, per batch, each module's output mean, std and share of |values| < eps."""

    def __init__(self, modules: Iterable[Module | torch.nn.Module], eps: float = 1e-2):
        modules = list(modules)
        self.eps = eps
        self.index = {id(m): i for i, m in enumerate(modules)}
        # One (mean, std, near-zero) tensor per batch, left on the device: converting to floats
        # only when read keeps the forward pass free of host syncs.
        self.records: list[list[torch.Tensor]] = [[] for _ in modules]
        self.enabled = True  # a training loop turns recording off for batches it does not want
        super().__init__(modules, self.record)

    def record(self, module: Any, inputs: tuple, output: Any) -> None:
        """The hook: append this batch's stats of `output` for `module`."""
        if not self.enabled:
            return
        x = output.detach().float()
        self.records[self.index[id(module)]].append(
            torch.stack([x.mean(), x.std(), (x.abs() < self.eps).float().mean()]))

    def _column(self, j: int) -> list[list[float]]:
        return [torch.stack(r)[:, j].tolist() if r else [] for r in self.records]

    @property
    def means(self) -> list[list[float]]:
        """`means[i][b]`: mean output of module i at batch b."""
        return self._column(0)

    @property
    def stds(self) -> list[list[float]]:
        """`stds[i][b]`: std of module i's output at batch b."""
        return self._column(1)

    @property
    def near_zero(self) -> list[list[float]]:
        """`near_zero[i][b]`: share of module i's outputs with |value| < eps at batch b."""
        return self._column(2)
