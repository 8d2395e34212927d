"""The LR range test: `LRFinder` raises the lr every training batch and records the loss; `lr_find` runs it and
leaves the learner exactly as it was, restoring the very state a checkpoint holds (`checkpoint.py`)."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..distributed import is_distributed
from .checkpoint import load_training_state, training_state
from .core import CancelFitException, CancelValidateException
from .schedule import ParamScheduler, check_positive, sched_exp


def _refuse_under_torchrun() -> None:
    if is_distributed():
        raise RuntimeError(
            "lr_find runs in a single process: its stopping rules read each rank's own loss, so ranks would "
            "stop at different batches and hang. Run it without torchrun (python train.py), then pass the "
            "suggested lr to the script you launch with torchrun."
        )


class LRFinder(ParamScheduler):
    """LR range test: lr from `start_lr`, times `mult` every training batch; records lr and loss (raw and
    smoothed); stops (CancelFitException) past `max_lr`, at a NaN/inf loss, when the smoothed loss exceeds
    4x the best, or after `max_iter` batches. Skips validation. `learn.lr_find` restores the learner."""

    def __init__(
        self, start_lr: float = 1e-6, mult: float = 1.2, max_lr: float = 10, max_iter: int = 90, beta: float = 0.98
    ):
        check_positive(start_lr=start_lr, max_lr=max_lr)
        if not mult > 1:
            raise ValueError(f"mult must be > 1 (the lr grows by it every batch), got {mult!r}.")
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
        if not 0 <= beta < 1:
            raise ValueError(f"beta (loss smoothing) must be in [0, 1), got {beta!r}.")
        self.start_lr, self.mult, self.max_lr, self.max_iter, self.beta = start_lr, mult, max_lr, max_iter, beta
        # start_lr * (mult**max_iter) ** (i / max_iter) == start_lr * mult**i
        super().__init__("lr", sched_exp(start_lr, start_lr * mult**max_iter))

    def pct(self) -> float:
        """The finder's own horizon: `max_iter` batches, whatever the fit's length."""
        return self.learn.train_iter / self.max_iter

    def before_fit(self):
        _refuse_under_torchrun()
        super().before_fit()
        self.lrs: list[float] = []
        self.losses: list[float] = []  # smoothed
        self.raw_losses: list[float] = []
        self.avg, self.best = 0.0, math.inf

    def before_batch(self):
        if not self.training:
            return
        if self.learn.train_iter >= self.max_iter or self.scheds["lr"](self.pct()) > self.max_lr:
            raise CancelFitException()
        super().before_batch()

    def after_loss(self):
        if not self.training:
            return
        loss = self.loss.item()
        if not math.isfinite(loss):
            raise CancelFitException()  # before the step, and before TerminateOnNaN warns
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta ** (len(self.lrs) + 1))  # bias-corrected
        self.lrs.append(self.learn.lr)  # the last group's: the one scheduled, the others keep their ratios
        self.raw_losses.append(loss)
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        if smooth > 4 * self.best:
            raise CancelFitException()

    def before_validate(self):
        raise CancelValidateException()

    def result(self, skip_end: int = 2) -> LRFindResult:
        """The recorded curve with its suggested lrs."""
        return LRFindResult(list(self.lrs), list(self.losses), list(self.raw_losses), skip_end)


@dataclass
class LRFindResult:
    """What `lr_find` found: `lrs`, smoothed `losses`, `raw_losses`, `suggestions` and `suggestion`.

    `suggestion` is the minimum/10 rule, the most robust of the three on measurement: on digits (an MLP
    with SGD, SGD+momentum and Adam, batch sizes 16 and 64, 3 seeds each) `fit_one_cycle(5)` at it
    reached 94% on average and never below 83%, against 84% (worst 44%) for valley and 80% for steepest.
    Steepest reads the slope at one point of a noisy curve; valley, fit to 90 batches whose loss is flat
    over most of the range, lands in the flat part. The minimum itself is clear on every curve. Every
    suggestion lies inside the range tried; all are NaN (with a warning saying what to try) when the loss never fell.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    skip_end: int = 2  # the last points, usually the divergence, are dropped (as fastai's plot does)
    suggestions: dict[str, float] = field(init=False)
    suggestion: float = field(init=False)

    def __post_init__(self):
        self.suggestions = suggest_lrs(*self.curve())
        self.suggestion = self.suggestions["minimum/10"]  # a tenth of the minimum's lr: never past it

    def curve(self) -> tuple[list[float], list[float]]:
        """The finite points of (lrs, smoothed losses), the last `skip_end` dropped."""
        points = [(lr, loss) for lr, loss in zip(self.lrs, self.losses) if math.isfinite(loss)]
        points = points[: max(len(points) - self.skip_end, 0)]
        return [p[0] for p in points], [p[1] for p in points]

    def plot(self, path: str | Path | None = None) -> Any:
        """Loss vs lr on a log axis, every suggestion marked; saves a PNG at `path`; returns the Figure."""
        from ..plots import plot_lr_find

        return plot_lr_find(*self.curve(), self.suggestions, path)


MIN_FALL = 0.005  # a smoothed loss never 0.5% below where it started: no descent to read, only noise


def suggest_lrs(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    """Suggested lrs from a finder curve, each inside the range tried: `steepest`, `valley`, `minimum/10` (at
    least the first lr); NaN, with a warning saying what to try, when the loss never fell or too few points."""
    points = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss) and lr > 0]
    if len(points) < 3:
        warnings.warn(
            f"lr_find recorded {len(points)} finite losses, too few to suggest an lr: lower start_lr, "
            f"raise max_iter, or check that the loss is finite at the start.",
            RuntimeWarning,
            stacklevel=3,
        )
        return {"steepest": math.nan, "valley": math.nan, "minimum/10": math.nan}
    lrs, losses = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    # Past the minimum the curve climbs or thrashes: every rule looks only at the descent up to it.
    lowest = int(np.argmin(losses))
    if losses[0] - losses[lowest] < MIN_FALL * abs(losses[0]):
        warnings.warn(
            f"lr_find: the loss never fell (at best {losses[lowest]:.4g}, against {losses[0]:.4g} at the start) for "
            f"lrs from {lrs[0]:.3g} to {lrs[-1]:.3g}, so no lr is suggested. Check that the model can learn (its "
            f"output depends on trainable weights, labels match the loss), or try a larger max_lr or max_iter.",
            RuntimeWarning,
            stacklevel=3,
        )
        return {"steepest": math.nan, "valley": math.nan, "minimum/10": math.nan}
    tried = lrs[0]
    lrs, losses = lrs[: max(lowest + 1, 2)], losses[: max(lowest + 1, 2)]
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return {
        "steepest": float(lrs[int(np.argmin(slopes))]),
        "valley": float(lrs[_valley_index(losses)]),
        "minimum/10": float(max(lrs[lowest] / 10, tried)),  # never below the range that was tried
    }


def _valley_index(losses: np.ndarray) -> int:
    """fastai's valley: the longest run of decreasing losses (as a subsequence), then 2/3 of the way down."""
    n = len(losses)
    run = [1] * n  # run[i]: length of the longest decreasing subsequence ending at i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[i] > run[end]:
            end, start = i, i - run[i]
    third = (end - start) / 3
    return min(start + int(third) + int(third / 2), n - 1)


def lr_find(
    learn: Any, start_lr: float = 1e-6, mult: float = 1.2, max_lr: float = 10, max_iter: int = 90
) -> LRFindResult:
    """Run an `LRFinder` (cycling the train loader as needed) and put the learner back as it was.

    The callbacks that write files, print, stop training or restore weights (`during_lr_find = False`) sit
    it out; afterwards the learner gets back the state a checkpoint would hold (weights, optimizer, callbacks'
    states, history, progress, every RNG and the train loader's position), so a later fit runs as if
    `lr_find` never had.
    """
    _refuse_under_torchrun()  # before the DDP callback sets up a process group for nothing
    finder = LRFinder(start_lr, mult, max_lr, max_iter)
    n_epoch = math.ceil(max_iter / len(learn.dls.train))
    saved = copy.deepcopy(training_state(learn, learn.epoch, 0))
    grads = [None if p.grad is None else p.grad.clone() for p in learn.model.parameters()]
    modes = [m.training for m in learn.model.modules()]
    progress = (learn.n_epoch, learn.epoch, learn.iter, learn.train_iter, learn.n_train_iter)
    put_back = learn.remove_cbs([cb for cb in learn.cbs if not cb.during_lr_find])
    try:
        learn.fit(n_epoch, cbs=[finder])
    finally:
        put_back()
        load_training_state(learn, saved)
        for p, g in zip(learn.model.parameters(), grads):
            p.grad = g
        for m, mode in zip(learn.model.modules(), modes):
            m.training = mode
        learn.n_epoch, learn.epoch, learn.iter, learn.train_iter, learn.n_train_iter = progress
    return finder.result()
