"""Schedules: pure functions of training progress, and the callbacks that apply them.

`ParamScheduler` sets a hyper-parameter to `sched_fn(learn.pct_train)` before every training batch, through
`learn.set_hp`; `OneCycle` (and the LR finder, `lr_find.py`) are thin layers over it. `TorchScheduler` drives
the lr with any `torch.optim.lr_scheduler`. None keeps a counter of its own: progress is the learner's.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from ..optim import check_hp, set_hp
from .core import Callback

Schedule = Callable[[float], float]  # pct of training done, in [0, 1] -> value


# -- schedules: pure functions of progress ---------------------------------------------------
def _lin(start: float, end: float, pct: float) -> float:
    return start + pct * (end - start)


def _cos(start: float, end: float, pct: float) -> float:
    return start + (1 - math.cos(math.pi * pct)) * (end - start) / 2


def _exp(start: float, end: float, pct: float) -> float:
    return start * (end / start) ** pct


def _no(start: float, end: float, pct: float) -> float:
    return start


def sched_lin(start: float, end: float) -> Schedule:
    """Linear from `start` (pct 0) to `end` (pct 1)."""
    return partial(_lin, start, end)


def sched_cos(start: float, end: float) -> Schedule:
    """Half a cosine from `start` to `end`: flat at both ends, steepest in the middle."""
    return partial(_cos, start, end)


def sched_exp(start: float, end: float) -> Schedule:
    """Geometric from `start` to `end` (both > 0): a straight line on a log axis."""
    if not (start > 0 and end > 0):
        raise ValueError(f"sched_exp needs start > 0 and end > 0, got start={start}, end={end}.")
    return partial(_exp, start, end)


def sched_no(start: float, end: float = 0.0) -> Schedule:
    """Constant `start`."""
    return partial(_no, start, end)


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """`scheds[k]` over the `k`-th share `pcts[k]` of training, each seeing its own pct from 0 to 1."""
    if len(pcts) != len(scheds) or not pcts:
        raise ValueError(f"combine_scheds needs one pct per schedule, got {len(pcts)} pcts and {len(scheds)}.")
    if any(p <= 0 for p in pcts) or not math.isclose(sum(pcts), 1.0):
        raise ValueError(f"combine_scheds: pcts must be > 0 and sum to 1, got {list(pcts)}.")
    bounds = [0.0]
    for p in pcts:
        bounds.append(bounds[-1] + p)
    return partial(_combined, tuple(bounds), tuple(scheds))


def _combined(bounds: tuple[float, ...], scheds: tuple[Schedule, ...], pct: float) -> float:
    k = min(bisect.bisect_right(bounds, pct) - 1, len(scheds) - 1)
    return scheds[k]((pct - bounds[k]) / (bounds[k + 1] - bounds[k]))


# -- applying a schedule --------------------------------------------------------------------------
class ParamScheduler(Callback):
    """Sets hyper-parameter `param` (`lr`, `momentum`, `wd`, ...) to `sched_fn(pct)` before every training
    batch, `pct` being `learn.pct_train`: the share of the fit's training batches already run."""

    order = 10  # before anything reads the hyper-parameters in before_batch

    def __init__(self, param: str, sched_fn: Schedule):
        self.scheds: dict[str, Schedule] = {param: sched_fn}

    def before_fit(self):
        for param in self.scheds:
            check_hp(self.learn.opt.param_groups[0], param)  # fail now, naming the valid keys, not mid-fit

    @property
    def settings(self) -> dict[str, Any]:
        """What this schedule was made with, as plain values, for run trackers (`MLflowCallback` logs them);
        `lr_max`, where present, is the peak lr."""
        return {"params": ", ".join(self.scheds)}

    def pct(self) -> float:
        """Where the schedule stands, in [0, 1]."""
        return self.learn.pct_train

    def before_batch(self):
        if not self.learn.training:
            return
        pct = self.pct()
        for param, sched in self.scheds.items():
            self.learn.set_hp(param, sched(pct))


def check_positive(**values: float) -> None:
    """A ValueError naming the first of `values` (name=value) that is not a finite number > 0."""
    for name, value in values.items():
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")


class OneCycle(ParamScheduler):
    """One-cycle policy: lr warms up (cosine) from `lr_max/div` to `lr_max` over the first `pct_start` of
    training, then anneals to `lr_max/div_final`; momentum cycles 0.95 -> 0.85 -> 0.95 when the optimizer
    has a non-zero `momentum` or `betas`, and is left at 0.95 after the fit."""

    def __init__(
        self,
        lr_max: float,
        pct_start: float = 0.25,
        div: float = 10,
        div_final: float = 1e5,
        moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
    ):
        check_positive(lr_max=lr_max, div=div, div_final=div_final)
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in the open interval (0, 1), got {pct_start!r}: e.g. 0.25.")
        self.lr_max, self.pct_start, self.div, self.div_final, self.moms = lr_max, pct_start, div, div_final, moms
        phases = [pct_start, 1 - pct_start]
        lr = combine_scheds(phases, [sched_cos(lr_max / div, lr_max), sched_cos(lr_max, lr_max / div_final)])
        super().__init__("lr", lr)
        self._mom = combine_scheds(phases, [sched_cos(moms[0], moms[1]), sched_cos(moms[1], moms[2])])

    @property
    def settings(self) -> dict[str, Any]:
        """`lr_max` (the peak lr), `pct_start`, `div`, `div_final`: see `ParamScheduler.settings`."""
        return {"lr_max": self.lr_max, "pct_start": self.pct_start, "div": self.div, "div_final": self.div_final}

    def before_fit(self):
        self.scheds.pop("momentum", None)
        if any(self.learn.hps.get("momentum", [0.0])):
            self.scheds["momentum"] = self._mom
        super().before_fit()


class TorchScheduler(Callback):
    """Drives the lr with a `torch.optim.lr_scheduler` built by `sched_factory(opt)` in `before_fit`,
    stepped after every epoch (`per="epoch"`) or every optimizer step (`per="batch"`).
    `ReduceLROnPlateau` steps with the epoch's valid loss (the train loss when there is no valid set)."""

    order = 55  # after the Recorder (50): `after_epoch` reads the epoch's row in `learn.history`

    def __init__(self, sched_factory: Callable[[torch.optim.Optimizer], Any], per: str = "epoch"):
        if per not in ("epoch", "batch"):
            raise ValueError(f"per must be 'epoch' or 'batch', got {per!r}.")
        self.sched_factory, self.per = sched_factory, per
        self.sched: Any = None
        self._pending: dict | None = None  # state loaded before the scheduler exists
        self._skipped = False

    def before_fit(self):
        try:
            self.sched = self.sched_factory(self.opt)
        except TypeError as e:
            raise TypeError(
                f"sched_factory must take the optimizer, e.g. partial(StepLR, step_size=3); "
                f"calling {self.sched_factory!r}(optimizer) raised: {e}"
            ) from e
        self.plateau = isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self.plateau and self.per == "batch":
            raise ValueError("ReduceLROnPlateau steps on the valid loss once per epoch: pass per='epoch'.")
        if self._pending is not None:
            self.sched.load_state_dict(self._pending)
            self._pending = None
        self.learn.read_hps()  # building a torch scheduler may set the lr (its initial value)

    @property
    def settings(self) -> dict[str, Any]:
        """The torch scheduler's class (or factory) and `per`: see `ParamScheduler.settings`."""
        factory = getattr(self.sched_factory, "func", self.sched_factory)  # a functools.partial's class
        return {"scheduler": getattr(factory, "__name__", type(factory).__name__), "per": self.per}

    def after_cancel_step(self):
        self._skipped = True  # no optimizer step this batch (accumulation, an fp16 overflow): no scheduler step

    def after_step(self):
        if self.per == "batch" and not self._skipped:
            self._step()
        self._skipped = False

    def after_epoch(self):
        if self.per != "epoch":
            return
        if not self.plateau:
            self._step()
            return
        row = self.learn.history[-1]
        self._step(row.get("valid_loss", row["train_loss"]))

    def _step(self, *metric: float) -> None:
        self.sched.step(*metric)
        self.learn.read_hps()  # the torch scheduler wrote the optimizer's param groups itself

    def state_dict(self) -> dict:
        """The torch scheduler's `state_dict`."""
        return self.sched.state_dict() if self.sched is not None else dict(self._pending or {})

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (applied when the scheduler is built, if it is not yet)."""
        if self.sched is not None:
            self.sched.load_state_dict(state)
        else:
            self._pending = dict(state)


# -- choosing a schedule by name (the `learnloop fit --sched` choices) -----------------------
SCHEDULES = ("onecycle", "step", "cos", "none")


def schedule_cbs(name: str, lr: float, n_epoch: int) -> list[Callback]:
    """The callbacks for the schedule `name`: one-cycle peaking at `lr`, StepLR (x0.1 every third of the
    epochs), cosine annealing from `lr` to 0, or none (a constant lr)."""
    if name == "onecycle":
        return [OneCycle(lr)]
    if name == "step":
        return [TorchScheduler(partial(step_lr_from, lr, max(n_epoch // 3, 1)))]
    if name == "cos":
        return [ParamScheduler("lr", sched_cos(lr, 0.0))]
    if name == "none":
        return []
    raise ValueError(f"Unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}.")


def step_lr_from(lr: float, step_size: int, opt: Any) -> torch.optim.lr_scheduler.StepLR:
    """A `StepLR` (x0.1 every `step_size` epochs) that starts from `lr`, whatever lr `opt` was left at."""
    set_hp(opt, "lr", lr)
    for group in opt.param_groups:  # StepLR starts from `initial_lr` when an earlier scheduler left one
        group.pop("initial_lr", None)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=0.1)
