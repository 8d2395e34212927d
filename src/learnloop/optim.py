"""Optimizers from scratch, as torch.optim.Optimizer subclasses so every torch scheduler drives them.

Param-group keys: SGD has `lr`, `wd`, `momentum`; AdamW has `lr`, `betas`, `eps`, `wd`.
Per-parameter state (momentum buffers, moments) lives in `self.state[p]`, so `state_dict()` and
`load_state_dict()` resume exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["Optimizer", "SGD", "AdamW", "read_hps", "read_hp", "set_hp", "check_hp", "group_values"]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _check(name: str, value: float, low: float = 0.0) -> None:
    if not value >= low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


class Optimizer(torch.optim.Optimizer):
    """Base of learnloop's optimizers: `step` calls `update(p, group)` per parameter with a grad."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Update every parameter that has a gradient; `closure` recomputes the loss first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self.update_group(params, group)
        return loss

    def update_group(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """Update every parameter of `params` (those of `group` with a grad); by default `update` one by one."""
        for p in params:
            self.update(p, group)

    def update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Change `p` in place from `p.grad` and `group`'s settings; subclasses define it."""
        raise NotImplementedError


class SGD(Optimizer):
    """`p -= lr * (grad + wd * p)`; with momentum, the step uses `buf = momentum * buf + grad` (Nesterov:
    `grad + momentum * buf`)."""

    def __init__(self, params: Params, lr: float, wd: float = 0.0, momentum: float = 0.0, nesterov: bool = False):
        for name, value in (("lr", lr), ("wd", wd), ("momentum", momentum)):
            _check(name, value)
        if nesterov and not momentum:
            raise ValueError("nesterov=True needs a momentum > 0, e.g. SGD(params, lr, momentum=0.9, nesterov=True).")
        super().__init__(params, dict(lr=lr, wd=wd, momentum=momentum, nesterov=nesterov))

    def update_group(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """One SGD step for all of `params` at once (torch's `_foreach` ops: a few kernels, not a few per tensor)."""
        grads = [p.grad for p in params]
        if group["wd"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["wd"])
        if group["momentum"] != 0:
            bufs = self._momentum(params, grads, group["momentum"])
            grads = torch._foreach_add(grads, bufs, alpha=group["momentum"]) if group.get("nesterov") else bufs
        torch._foreach_add_(params, grads, alpha=-group["lr"])

    def _momentum(self, params: list[torch.Tensor], grads: list[torch.Tensor], momentum: float) -> list[torch.Tensor]:
        """`buf = momentum * buf + grad` for each param (`buf = grad` on its first step); returns the bufs."""
        states = [self.state[p] for p in params]
        old = [(st["momentum_buffer"], g) for st, g in zip(states, grads) if "momentum_buffer" in st]
        if old:
            bufs, old_grads = map(list, zip(*old))
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, old_grads)
        for st, g in zip(states, grads):
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = g.clone()
        return [st["momentum_buffer"] for st in states]


class AdamW(Optimizer):
    """Adam with decoupled weight decay (`p -= lr * wd * p` before the Adam step); wd=0 is Adam."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, wd: float = 0.01):
        for name, value in (("lr", lr), ("eps", eps), ("wd", wd), ("beta1", betas[0]),
                            ("beta2", betas[1])):
            _check(name, value)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, wd=wd))

    def update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """One AdamW step for `p`."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        p.mul_(1 - lr * group["wd"])
        exp_avg.lerp_(p.grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
        p.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** step))


# -- hyper-parameters by name, for any torch optimizer ---------------------------------------------
_ALIASES = {"wd": "weight_decay", "weight_decay": "wd"}  # learnloop's optimizers say wd, torch's weight_decay
HP_NAMES = ("lr", "momentum", "wd")  # what `read_hps` reports, when the optimizer has it


def _hp_key(group: dict, name: str) -> str | None:
    """The param-group key that holds `name` (`momentum` is `betas` for Adam-style optimizers), or None."""
    if name == "momentum" and "betas" in group:
        return "betas"
    if name not in group and _ALIASES.get(name) in group:
        return _ALIASES[name]
    return name if name in group else None


def _group_value(group: dict, key: str) -> float:
    return group[key][0] if key == "betas" else group[key]


def read_hps(opt: torch.optim.Optimizer) -> dict[str, list[float]]:
    """The optimizer's `lr`, `momentum` and `wd` (those it has), one value per param group."""
    hps = {}
    for name in HP_NAMES:
        keys = [_hp_key(group, name) for group in opt.param_groups]
        if all(keys):
            hps[name] = [float(_group_value(g, k)) for g, k in zip(opt.param_groups, keys)]
    return hps


def read_hp(opt: torch.optim.Optimizer, name: str) -> list[float]:
    """Hyper-parameter `name` of every param group (a KeyError listing the valid ones if it has none)."""
    return [float(_group_value(g, check_hp(g, name))) for g in opt.param_groups]


HpValue = float | slice | Sequence[float]  # one value for all groups, a `slice` spread over them, or one per group


def group_values(value: HpValue, n_groups: int, name: str = "lr") -> list[float]:
    """One value per param group: a number for every group; `slice(hi)`: the last group `hi`, the others `hi/10`;
    `slice(lo, hi)`: geometric from `lo` (first group) to `hi` (last); a sequence: one value per group."""
    if isinstance(value, slice):
        lo, hi = value.start, value.stop
        if value.step is not None or not all(isinstance(v, (int, float)) and v > 0 for v in (hi, lo or hi)):
            raise ValueError(f"{name}={value!r}: a slice of {name}s is slice(hi) or slice(lo, hi) with numbers > 0, "
                             f"e.g. slice(1e-4, 1e-3).")
        if n_groups == 1:
            return [float(hi)]
        if lo is None:
            return [hi / 10] * (n_groups - 1) + [float(hi)]
        step = (hi / lo) ** (1 / (n_groups - 1))
        return [lo * step**i for i in range(n_groups - 1)] + [float(hi)]
    if isinstance(value, Sequence) or (isinstance(value, torch.Tensor) and value.ndim == 1):
        values = [float(v) for v in value]
        if len(values) != n_groups:
            raise ValueError(f"{name} got {len(values)} values for {n_groups} param groups: pass one value, a "
                             f"slice, or one value per group.")
        return values
    return [value] * n_groups


def set_hp(opt: torch.optim.Optimizer, name: str, value: HpValue) -> list[float]:
    """Set hyper-parameter `name` on every param group (`group_values`: one value, a slice, or one per group);
    return the values per group."""
    groups = opt.param_groups
    values = group_values(value, len(groups), name)
    for group, v in zip(groups, values):
        key = check_hp(group, name)
        group[key] = (v, *group[key][1:]) if key == "betas" else v
    return values


def check_hp(group: dict, name: str) -> str:
    """The key of a param group that holds hyper-parameter `name`; a KeyError listing the valid ones if none."""
    key = _hp_key(group, name)
    if key is None:
        hps = sorted(k for k in group if k != "params")
        raise KeyError(f"The optimizer has no hyper-parameter {name!r}; its param groups have {hps}.")
    return key
