"""TorchScheduler driving timm-style schedulers, per epoch and per update, with exact resume."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from learnloop.callbacks import Callback, Checkpoint
from learnloop.callbacks.schedule import TorchScheduler
from learnloop.data import DataLoaders
from learnloop.data.datasets import digits
from learnloop.learner import Learner
from learnloop.metrics import accuracy


@pytest.fixture
def learner(make_dls, make_mlp):
    """Factory: an MLP learner on digits, no progress output."""

    def make(bs: int = 32, seed: int = 0, **kwargs) -> Learner:
        return Learner(make_mlp(seed), make_dls(bs, seed), metrics=[accuracy], progress=False, **kwargs)

    return make


# -- timm-style schedulers ---------------------------------------------------------------------
# timm cannot be installed beside the CPU torch here (it imports torchvision), so this double reproduces the API
# of timm.scheduler.Scheduler (step(epoch, metric), step_update(num_updates, metric), t_in_epochs, `initial_lr` set
# in each param group, state_dict = its attributes less the optimizer) and CosineLRScheduler's warmup + cosine.
class TimmScheduler:
    def __init__(self, optimizer, param_group_field="lr", t_in_epochs=True, initialize=True):
        self.optimizer, self.param_group_field, self.t_in_epochs = optimizer, param_group_field, t_in_epochs
        key = f"initial_{param_group_field}"
        for group in optimizer.param_groups:
            if initialize:
                group.setdefault(key, group[param_group_field])
        self.base_values = [group[key] for group in optimizer.param_groups]
        self.metric = None
        self.update_groups(self.base_values)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        self.__dict__.update(state)

    def get_epoch_values(self, epoch):
        return self._get_lr(epoch) if self.t_in_epochs else None

    def get_update_values(self, num_updates):
        return None if self.t_in_epochs else self._get_lr(num_updates)

    def step(self, epoch, metric=None):
        self.metric = metric
        values = self.get_epoch_values(epoch)
        if values is not None:
            self.update_groups(values)

    def step_update(self, num_updates, metric=None):
        self.metric = metric
        values = self.get_update_values(num_updates)
        if values is not None:
            self.update_groups(values)

    def update_groups(self, values):
        values = values if isinstance(values, (list, tuple)) else [values] * len(self.optimizer.param_groups)
        for group, value in zip(self.optimizer.param_groups, values):
            group[self.param_group_field] = value


class CosineLRScheduler(TimmScheduler):
    def __init__(self, optimizer, t_initial, lr_min=0.0, warmup_t=0, warmup_lr_init=0.0, t_in_epochs=True):
        super().__init__(optimizer, "lr", t_in_epochs=t_in_epochs)
        self.t_initial, self.lr_min, self.warmup_t, self.warmup_lr_init = t_initial, lr_min, warmup_t, warmup_lr_init
        if warmup_t:
            self.warmup_steps = [(v - warmup_lr_init) / warmup_t for v in self.base_values]
            super().update_groups(warmup_lr_init)
        else:
            self.warmup_steps = [1 for _ in self.base_values]

    def _get_lr(self, t):
        if t < self.warmup_t:
            return [self.warmup_lr_init + t * s for s in self.warmup_steps]
        if t >= self.t_initial:  # one cycle (cycle_limit=1), then lr_min
            return [self.lr_min for _ in self.base_values]
        return [self.lr_min + 0.5 * (v - self.lr_min) * (1 + math.cos(math.pi * t / self.t_initial))
                for v in self.base_values]


def cosine(t, lr, t_initial, warmup_t, warmup_lr_init, lr_min=0.0):
    """timm's warmup + cosine, written out."""
    if t < warmup_t:
        return warmup_lr_init + t * (lr - warmup_lr_init) / warmup_t
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t / t_initial)) if t < t_initial else lr_min


def test_timm_style_scheduler_per_epoch(learner):
    learn = learner(bs=512, lr=0.1)  # 3 batches an epoch
    learn.fit(6, cbs=[TorchScheduler(partial(CosineLRScheduler, t_initial=5, warmup_t=2, warmup_lr_init=0.01))])
    expected = [cosine(e, 0.1, 5, 2, 0.01) for e in range(6)]
    assert [row["lr"] for row in learn.history] == pytest.approx(expected)
    assert learn.recorder.lrs == pytest.approx([lr for lr in expected for _ in range(3)])  # hps re-read
    assert learn.hps["lr"][0] == pytest.approx(cosine(6, 0.1, 5, 2, 0.01))


def test_timm_style_scheduler_per_update(learner):
    learn = learner(bs=512, lr=0.1)
    factory = partial(CosineLRScheduler, t_initial=9, warmup_t=2, warmup_lr_init=0.0, t_in_epochs=False)
    learn.fit(3, cbs=[TorchScheduler(factory)])
    assert learn.recorder.lrs == pytest.approx([cosine(n, 0.1, 9, 2, 0.0) for n in range(9)])


def test_timm_style_scheduler_resumes_exactly(make_mlp, tmp_path):
    def fit(cbs=(), resume=None):
        learn = Learner(make_mlp(0), DataLoaders.from_dsets(*digits(), bs=512, seed=0), lr=0.1, progress=False)
        factory = partial(CosineLRScheduler, t_initial=12, warmup_t=3, warmup_lr_init=0.01, t_in_epochs=False)
        cbs = [TorchScheduler(factory), Checkpoint(tmp_path / "last.ckpt", every_n_batches=1), *cbs]
        learn.fit(4, cbs=cbs, resume=resume)
        return learn

    class StopAt(Callback):
        def after_batch(self):
            if self.train_iter == 7:  # in the 8th of 12 batches, before its checkpoint (order 90) is written
                raise KeyboardInterrupt

    class CountSteps(Callback):
        n = 0

        def after_step(self):
            self.n += 1

    expected = fit()
    with pytest.raises(KeyboardInterrupt):
        fit([StopAt()])
    count = CountSteps()
    resumed = fit([count], resume=tmp_path / "last.ckpt")
    assert count.n == 5  # resumed after the 7th batch's checkpoint
    assert resumed.recorder.lrs == pytest.approx(expected.recorder.lrs)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.parameters(), expected.model.parameters()))
    assert [row["lr"] for row in resumed.history] == [row["lr"] for row in expected.history]
