"""Schedules: pure functions of training progress, and the callbacks that apply them.

`ParamScheduler` sets a hyper-parameter to `sched_fn(learn.pct_train)` before every training batch, through
`learn.set_hp`, keeping the ratios between param groups (discriminative lrs, `slice`); `OneCycle` (and the LR finder, `lr_find.py`) are thin layers over it. `TorchScheduler` drives
the lr with any `torch.optim.lr_scheduler`, or a timm scheduler. None keeps a counter of its own: progress is the learner's.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from ..optim import HpValue, check_hp, group_values, read_hp, set_hp
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
    batch, `pct` being `learn.pct_train`: the share of the fit's training batches already run.

    A number from `sched_fn` goes to the last param group (the head) and the others keep their ratio to it, as
    they were when the fit began (`slice` lrs stay spread); a list gives one value per group."""

    order = 10  # before anything reads the hyper-parameters in before_batch

    def __init__(self, param: str, sched_fn: Schedule):
        self.scheds: dict[str, Schedule] = {param: sched_fn}
        self.ratios: dict[str, list[float] | None] = {}

    def before_fit(self):
        for param in self.scheds:
            check_hp(self.learn.opt.param_groups[0], param)  # fail now, naming the valid keys, not mid-fit
            self.ratios[param] = group_ratios(read_hp(self.learn.opt, param))

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
            value, ratios = sched(pct), self.ratios.get(param)
            if ratios is not None and not isinstance(value, Sequence):
                value = [value * r for r in ratios]
            self.learn.set_hp(param, value)


def group_ratios(values: list[float]) -> list[float] | None:
    """Each group's value over the last group's; None when they are all equal (or the last is 0): one value."""
    last = values[-1]
    if all(v == last for v in values) or not (last and math.isfinite(last)):
        return None
    return [v / last for v in values[:-1]] + [1.0]


def check_positive(**values: float) -> None:
    """A ValueError naming the first of `values` (name=value) that is not a finite number > 0."""
    for name, value in values.items():
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")


class OneCycle(ParamScheduler):
    """One-cycle policy: lr warms up (cosine) from `lr_max/div` to `lr_max` over the first `pct_start` of
    training, then anneals to `lr_max/div_final`; momentum cycles 0.95 -> 0.85 -> 0.95 when the optimizer
    has a non-zero `momentum` or `betas`, and is left at 0.95 after the fit. `lr_max` may be a `slice` or one
    value per param group (each group then cycles between its own bounds); None: the groups' lrs at the start."""

    def __init__(
        self,
        lr_max: HpValue | None,
        pct_start: float = 0.25,
        div: float = 10,
        div_final: float = 1e5,
        moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
    ):
        check_positive(div=div, div_final=div_final)
        if lr_max is not None and not isinstance(lr_max, (slice, Sequence)):
            check_positive(lr_max=lr_max)
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in the open interval (0, 1), got {pct_start!r}: e.g. 0.25.")
        self.pct_start, self.div, self.div_final, self.moms = pct_start, div, div_final, moms
        self.given_lr_max = self.lr_max = lr_max  # lr_max: the last group's peak once the fit begins (loggers)
        self.lr_maxes: list[float] = []  # the peak of each param group, this fit
        self.phases = [pct_start, 1 - pct_start]
        super().__init__("lr", self._lr_sched(1.0 if lr_max is None or isinstance(lr_max, (slice, Sequence))
                                              else lr_max))
        self._mom = combine_scheds(self.phases, [sched_cos(moms[0], moms[1]), sched_cos(moms[1], moms[2])])

    def _lr_sched(self, lr_max: float) -> Schedule:
        return combine_scheds(self.phases, [sched_cos(lr_max / self.div, lr_max),
                                            sched_cos(lr_max, lr_max / self.div_final)])

    @property
    def settings(self) -> dict[str, Any]:
        """`lr_max` (the peak lr), `pct_start`, `div`, `div_final`: see `ParamScheduler.settings`."""
        return {"lr_max": self.lr_max, "pct_start": self.pct_start, "div": self.div, "div_final": self.div_final}

    def before_fit(self):
        lr_max = self.learn.hps["lr"] if self.given_lr_max is None else self.given_lr_max
        lr_maxes = group_values(lr_max, len(self.learn.opt.param_groups))
        check_positive(**{f"lr_max[{i}]": v for i, v in enumerate(lr_maxes)})
        self.lr_max, self.lr_maxes = lr_maxes[-1], lr_maxes
        if len(set(lr_maxes)) == 1:
            self.scheds["lr"] = self._lr_sched(lr_maxes[0])
        else:  # one schedule per group: each group's lr exactly as if it were alone
            self.scheds["lr"] = partial(_per_group, tuple(self._lr_sched(v) for v in lr_maxes))
        self.scheds.pop("momentum", None)
        if any(self.learn.hps.get("momentum", [0.0])):
            self.scheds["momentum"] = self._mom
        super().before_fit()


def _per_group(scheds: tuple[Schedule, ...], pct: float) -> list[float]:
    return [sched(pct) for sched in scheds]


class _PhaseCycle(OneCycle):
    """A one-cycle over the training batches `[start, start + length)` of a longer fit."""

    start, length = 0, 1

    def pct(self) -> float:
        return min(max((self.learn.train_iter - self.start) / self.length, 0.0), 1.0)


class FineTune(Callback):
    """fastai's `fine_tune` as one fit of `freeze_epochs + epochs` epochs: first the frozen model (`learn.freeze`)
    one-cycles to `slice(base_lr)` with `pct_start=0.99`; then, unfrozen, a one-cycle to `slice(base_lr/2/lr_mult,
    base_lr/2)` with `pct_start` and `div` (`base_lr` a slice or a list: the frozen phase's lrs, halved after). One fit, so history, progress, checkpoints and loggers see one run,
    its epochs numbered on; each epoch enters its phase, so a resume anywhere continues exactly."""

    order = ParamScheduler.order

    def __init__(self, epochs: int, freeze_epochs: int = 1, base_lr: HpValue = 2e-3, lr_mult: float = 100,
                 pct_start: float = 0.3, div: float = 5.0, train_bn: bool = True):
        for name, value, low in (("epochs", epochs, 1), ("freeze_epochs", freeze_epochs, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"fine_tune's {name} must be an int >= {low}, got {value!r}: e.g. fine_tune(3).")
        check_positive(lr_mult=lr_mult)
        self.epochs, self.freeze_epochs, self.train_bn = epochs, freeze_epochs, train_bn
        lrs = base_lr if isinstance(base_lr, (slice, Sequence)) else slice(base_lr)
        self.cycles = (_PhaseCycle(lrs, pct_start=0.99),
                       _PhaseCycle(_scaled(base_lr, 1 / 2 / lr_mult, 1 / 2), pct_start, div))
        self.phase: int | None = None

    def before_fit(self):
        if self.learn.n_epoch != self.freeze_epochs + self.epochs:
            raise ValueError(f"FineTune({self.epochs}, freeze_epochs={self.freeze_epochs}) needs a fit of "
                             f"{self.freeze_epochs + self.epochs} epochs, this one has {self.learn.n_epoch}: "
                             f"call learn.fine_tune({self.epochs}).")
        self.phase = None

    def before_epoch(self):
        phase = int(self.epoch >= self.freeze_epochs)
        if phase == self.phase:
            return
        self.phase = phase
        learn = self.learn
        learn.freeze(self.train_bn) if phase == 0 else learn.unfreeze()
        split = learn.n_train_iter * self.freeze_epochs // learn.n_epoch  # the frozen phase's training batches
        cycle = self.cycles[phase]
        cycle.learn, cycle.start = learn, split * phase
        cycle.length = max(split if phase == 0 else learn.n_train_iter - split, 1)
        cycle.before_fit()

    def before_batch(self):
        self.cycles[self.phase].before_batch()


def _scaled(lr: HpValue, lo: float, hi: float) -> HpValue:
    """fastai's unfrozen lrs: `slice(lr * lo, lr * hi)` for a number; a slice or list given per group, halved."""
    if isinstance(lr, slice):
        return slice(None if lr.start is None else lr.start / 2, lr.stop / 2)
    if isinstance(lr, Sequence):
        return [v / 2 for v in lr]
    return slice(lr * lo, lr * hi)


class TorchScheduler(Callback):
    """Drives the lr with a `torch.optim.lr_scheduler` built by `sched_factory(opt)` in `before_fit`,
    stepped after every epoch (`per="epoch"`) or every optimizer step (`per="batch"`).
    `ReduceLROnPlateau` steps with the epoch's valid loss (the train loss when there is no valid set).

    A timm-style scheduler (one with `step(epoch, metric)` and `step_update(num_updates, metric)`, e.g. timm's
    `CosineLRScheduler`) is driven as timm's own train loop does: `step_update(n)` after the n-th optimizer step of
    the fit and `step(epoch + 1, valid_loss)` after each epoch; its `t_in_epochs` decides which one moves the lr.
    """

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
        self.timm = callable(getattr(self.sched, "step_update", None))
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
        skipped, self._skipped = self._skipped, False
        if skipped:
            return
        if self.timm:  # updates counted over the whole run (training batches so far), so a resume continues it
            self.sched.step_update(num_updates=self.learn.train_iter + 1)
            self.learn.read_hps()
        elif self.per == "batch":
            self._step()

    def after_epoch(self):
        if self.timm:
            self._step(self.learn.epoch + 1, self._monitored())
        elif self.per == "epoch":
            self._step(*([self._monitored()] if self.plateau else []))

    def _monitored(self) -> float:
        row = self.learn.history[-1]
        return row.get("valid_loss", row["train_loss"])

    def _step(self, *args: float) -> None:
        self.sched.step(*args)
        self.learn.read_hps()  # the scheduler wrote the optimizer's param groups itself

    def state_dict(self) -> dict:
        """The scheduler's `state_dict`."""
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
