"""Schedules, ParamScheduler, OneCycle, the LR finder and TorchScheduler, on real digits runs."""

from __future__ import annotations

import copy
import math
import random
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image
from torch.optim import Adam
from torch.optim.lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR

from learnloop.callbacks.lr_find import LRFinder, suggest_lrs
from learnloop.callbacks.schedule import (
    OneCycle,
    ParamScheduler,
    TorchScheduler,
    combine_scheds,
    sched_cos,
    sched_exp,
    sched_lin,
    sched_no,
)
from learnloop.callbacks import Callback
from learnloop.learner import Learner
from learnloop.metrics import accuracy
from learnloop.nn import simple_cnn
from learnloop.optim import SGD


@pytest.fixture
def learner(make_dls, make_mlp):
    """Factory: an MLP learner on digits, no progress output."""

    def make(bs: int = 32, seed: int = 0, **kwargs) -> Learner:
        kwargs.setdefault("progress", False)
        return Learner(make_mlp(seed), make_dls(bs, seed), metrics=[accuracy], **kwargs)

    return make


# -- schedules ---------------------------------------------------------------------------------
def test_schedules_are_pure_functions_of_progress():
    assert [sched_lin(1, 3)(p) for p in (0, 0.5, 1)] == [1, 2, 3]
    assert [sched_cos(1, 3)(p) for p in (0, 0.5, 1)] == pytest.approx([1, 2, 3])
    assert sched_cos(1, 3)(0.25) == pytest.approx(1 + (1 - math.cos(math.pi / 4)))
    assert [sched_exp(1e-3, 1e-1)(p) for p in (0, 0.5, 1)] == pytest.approx([1e-3, 1e-2, 1e-1])
    assert sched_no(0.7)(0.3) == 0.7
    both = combine_scheds([0.25, 0.75], [sched_lin(0, 1), sched_lin(1, 0)])
    assert [both(p) for p in (0, 0.125, 0.25, 0.625, 1)] == pytest.approx([0, 0.5, 1, 0.5, 0])


@pytest.mark.parametrize("pcts", [[0.5, 0.6], [0, 1], [1.0]])
def test_combine_scheds_rejects_bad_pcts(pcts):
    with pytest.raises(ValueError, match="combine_scheds"):
        combine_scheds(pcts, [sched_lin(0, 1), sched_lin(1, 0)])


def test_sched_exp_needs_positive_ends():
    with pytest.raises(ValueError, match="start > 0 and end > 0"):
        sched_exp(0, 1)


# -- ParamScheduler ----------------------------------------------------------------------------
def test_param_scheduler_pct_is_batch_index_over_all_batches(learner):
    learn = learner(bs=256)  # 6 training batches per epoch
    learn.fit(2, cbs=[ParamScheduler("lr", sched_lin(0.0, 0.12))])
    n = 2 * len(learn.dls.train)
    expected = [0.12 * i / n for i in range(n)]
    assert learn.recorder.hps["lr"] == pytest.approx(expected)
    assert learn.recorder.lrs == pytest.approx(expected)  # set before the Recorder reads it
    assert learn.history[1]["lr"] == pytest.approx(expected[-1])


def test_param_scheduler_sets_momentum_as_betas_and_wd_by_alias(learner):
    learn = learner(bs=512, opt_func=partial(Adam, weight_decay=0.0))
    sched = ParamScheduler("momentum", sched_lin(0.9, 0.8))
    learn.fit(1, cbs=[sched, ParamScheduler("wd", sched_no(0.01))])
    group = learn.opt.param_groups[0]
    assert group["betas"] == (pytest.approx(0.9 - 0.1 * 2 / 3), 0.999)
    assert group["weight_decay"] == 0.01 and "wd" not in group
    assert learn.recorder.hps["momentum"] == pytest.approx([0.9, 0.9 - 0.1 / 3, 0.9 - 0.2 / 3])
    n = len(learn.opt.param_groups)  # body and head
    assert learn.hps["momentum"] == [group["betas"][0]] * n and learn.hps["wd"] == [0.01] * n
    assert sched.state_dict() == {}  # stateless: progress is the learner's (train_iter, pct_train)


def test_param_scheduler_unknown_param_names_the_valid_ones(learner):
    learn = learner(bs=512)
    with pytest.raises(KeyError, match="no hyper-parameter 'betas2'.*'lr'"):
        learn.fit(1, cbs=[ParamScheduler("betas2", sched_no(0.1))])


# -- OneCycle ----------------------------------------------------------------------------------
def test_fit_one_cycle_lr_per_batch_and_95_percent_at_lr_max_half(learner):
    learn = learner(bs=32)  # 45 batches per epoch, 225 in all
    learn.fit_one_cycle(5, lr_max=0.5)
    lrs = learn.recorder.lrs
    n = len(lrs)
    assert n == 225 and lrs == learn.recorder.hps["lr"]
    assert lrs[0] == pytest.approx(0.5 / 10)
    peak = max(range(n), key=lrs.__getitem__)
    assert abs(peak - 0.25 * n) <= 1 and lrs[peak] == pytest.approx(0.5, rel=1e-3)
    # pct = i / n never reaches 1, so the last lr is a little above lr_max/div_final = 5e-6.
    assert 0.5 / 1e5 < lrs[-1] < 0.5 / 1e4
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))  # warm-up rises, then anneals
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
    assert learn.history[-1]["valid_accuracy"] >= 0.95


def test_one_cycle_cycles_momentum_inversely(learner):
    learn = learner(bs=128, opt_func=partial(SGD, momentum=0.9))  # 12 batches per epoch
    learn.fit_one_cycle(5, lr_max=0.4)
    lrs, moms = learn.recorder.lrs, learn.recorder.hps["momentum"]
    assert moms[0] == pytest.approx(0.95) and moms[15] == pytest.approx(0.85) and moms[-1] > 0.949
    assert max(range(60), key=lrs.__getitem__) == 15 == min(range(60), key=moms.__getitem__)
    assert learn.opt.param_groups[0]["momentum"] == moms[-1]
    assert learn.history[-1]["valid_accuracy"] > 0.9


def test_one_cycle_leaves_momentum_alone_without_momentum(learner):
    learn = learner(bs=512)
    learn.fit_one_cycle(1, lr_max=0.1)
    assert set(learn.recorder.hps["momentum"]) == {0.0} and learn.opt.param_groups[0]["momentum"] == 0


def test_fit_one_cycle_defaults_to_learner_lr(learner):
    learn = learner(bs=512, lr=0.3)
    learn.fit_one_cycle(1)
    assert max(learn.recorder.lrs) == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr_max": 0}, "lr_max must be a finite number > 0"),
        ({"lr_max": -0.1}, "lr_max must be a finite number > 0"),
        ({"lr_max": math.nan}, "lr_max must be a finite number > 0"),
        ({"lr_max": 0.1, "pct_start": 0}, r"pct_start must be in the open interval \(0, 1\)"),
        ({"lr_max": 0.1, "pct_start": 1}, r"pct_start must be in the open interval \(0, 1\)"),
        ({"lr_max": 0.1, "pct_start": -0.5}, r"pct_start must be in the open interval \(0, 1\)"),
    ],
)
def test_one_cycle_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneCycle(**kwargs)


# -- LR finder ---------------------------------------------------------------------------------
def test_lr_find_lrs_grow_by_mult_and_stop_past_max_lr(learner):
    learn = learner(bs=64)  # 23 batches: 200 iterations cycle the loader
    result = learn.lr_find(max_iter=200)
    lrs = result.lrs
    assert lrs[0] == 1e-6
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([1.2] * (len(lrs) - 1), rel=1e-12)
    # Stopped by lr > 10 (the next lr, 1e-6 * 1.2**89, is 11.3) or earlier by divergence.
    assert lrs[-1] <= 10 and len(lrs) <= 89
    assert len(result.losses) == len(result.raw_losses) == len(lrs)


def test_lr_finder_stops_at_nan_without_warning(learner, recwarn):
    calls = []

    def nan_after_5(preds, targets):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(preds, targets)
        return loss * math.nan if len(calls) > 5 else loss

    learn = learner(bs=64, loss_func=nan_after_5)
    finder = LRFinder()
    learn.fit(3, cbs=[finder])
    assert len(finder.lrs) == 5 and len(calls) == 6  # stopped at the first NaN, before validation
    assert not [w for w in recwarn if "Stopping" in str(w.message)]
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_lr_finder_stops_when_the_loss_diverges(learner):
    calls = []

    def blows_up(preds, targets):
        calls.append(1)
        return torch.nn.functional.cross_entropy(preds, targets) * (1000 if len(calls) > 10 else 1)

    finder = LRFinder()
    learner(bs=64, loss_func=blows_up).fit(5, cbs=[finder])
    assert len(finder.lrs) == 11 and finder.losses[-1] > 4 * min(finder.losses)


def test_lr_find_cycles_a_short_loader(learner):
    learn = learner(bs=512)  # 3 batches
    result = learn.lr_find(max_iter=10)
    assert len(result.lrs) == 10 and learn.history == []


def _snapshot(learn: Learner) -> dict:
    return {
        "model": copy.deepcopy(learn.model.state_dict()),
        "opt": copy.deepcopy(learn.opt.state_dict()),
        "lr": learn.lr,
        "cbs": list(learn.cbs),
        "history": copy.deepcopy(learn.history),
        "recorder": copy.deepcopy(learn.recorder.state_dict()),
        "attrs": sorted(vars(learn)),
    }


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["opt"]["param_groups"] == b["opt"]["param_groups"]
    assert a["opt"]["state"].keys() == b["opt"]["state"].keys()
    for k, state in a["opt"]["state"].items():
        assert all(torch.equal(state[s], b["opt"]["state"][k][s]) for s in state)
    assert all(a[k] == b[k] for k in ("lr", "cbs", "history", "recorder", "attrs"))


def test_lr_find_restores_numpy_and_python_generators_a_loader_holds(learner):
    learn = learner(bs=512)
    dl = learn.dls.train
    dl.np_rng, dl.py_rng = np.random.default_rng(0), random.Random(0)
    expected = (np.random.default_rng(0).random(), random.Random(0).random())

    class Draws(Callback):  # runs during lr_find, drawing from both
        def before_batch(self):
            dl.np_rng.random(size=10), dl.py_rng.random()

    learn.add_cbs([Draws()])
    learn.lr_find(max_iter=5)
    assert (dl.np_rng.random(), dl.py_rng.random()) == expected


def test_lr_find_leaves_the_learner_exactly_as_found(learner, capsys):
    learn = learner(bs=64, progress=True, opt_func=partial(SGD, momentum=0.9), lr=0.05)
    learn.fit(1)  # momentum buffers, a history row and recorder contents to keep
    before = _snapshot(learn)
    assert before["opt"]["state"] and before["history"]
    capsys.readouterr()
    learn.lr_find()
    assert capsys.readouterr().out == ""  # no epoch table for the finder
    _assert_same_state(before, _snapshot(learn))

    # A fit after lr_find ends with the same weights as one without it (loader RNG restored too).
    learn.fit(1)
    twin = learner(bs=64, progress=False, opt_func=partial(SGD, momentum=0.9), lr=0.05)
    twin.fit(1)
    twin.fit(1)
    assert all(torch.equal(p, q) for p, q in zip(learn.model.parameters(), twin.model.parameters()))


def test_lr_find_suggestion_trains_digits_to_90_percent(learner):
    sgd_momentum = partial(SGD, momentum=0.9)
    result = learner(opt_func=sgd_momentum).lr_find()
    assert set(result.suggestions) == {"steepest", "valley", "minimum/10"}
    lr_min = result.lrs[result.losses.index(min(result.curve()[1]))]
    assert result.suggestion == pytest.approx(lr_min / 10) and 0.01 <= result.suggestion <= 1
    learn = learner(opt_func=sgd_momentum)
    learn.fit_one_cycle(5, result.suggestion)
    assert learn.history[-1]["valid_accuracy"] >= 0.90


def test_lr_find_then_one_cycle_with_learnloops_own_cnn(make_dls):
    torch.manual_seed(0)
    model = simple_cnn(in_channels=1, n_classes=10, widths=(16, 32, 64))
    learn = Learner(model, make_dls(32), metrics=[accuracy], progress=False)
    before = copy.deepcopy(model.state_dict())
    result = learn.lr_find()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert 0.01 <= result.suggestion <= 1
    learn.fit_one_cycle(5, result.suggestion)
    assert learn.history[-1]["valid_accuracy"] >= 0.90


def test_suggestions_ignore_nan_and_stay_before_the_minimum():
    lrs = [10 ** (-6 + k / 4) for k in range(30)]
    losses = [2.3 - 0.05 * k if k < 20 else 1.3 + 0.5 * (k - 20) for k in range(30)]
    losses[5], losses[12] = math.nan, math.inf
    got = suggest_lrs(lrs, losses)
    assert got["minimum/10"] == pytest.approx(lrs[20] / 10)
    assert all(lrs[0] <= lr <= lrs[20] for lr in got.values())
    with pytest.warns(RuntimeWarning, match="too few"):
        assert math.isnan(suggest_lrs([1e-6, 1e-5], [math.nan, 2.0])["valley"])


def test_suggestions_stay_inside_the_range_tried():
    lrs = [10 ** (-6 + k / 4) for k in range(30)]
    losses = [2.3, 2.0] + [2.0 + 0.2 * k for k in range(1, 29)]  # the minimum at the second lr
    got = suggest_lrs(lrs, losses)
    assert got["minimum/10"] == lrs[0]  # not lrs[1] / 10, below the start
    assert all(lrs[0] <= lr <= lrs[-1] for lr in got.values())


class ConstantOutput(torch.nn.Module):
    """Logits that no weight changes: a loss that cannot fall."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(len(x), 10) + 0 * self.w


def test_lr_find_on_a_loss_that_never_falls_says_so_instead_of_suggesting(make_dls):
    learn = Learner(ConstantOutput(), make_dls(32), progress=False)
    with pytest.warns(RuntimeWarning, match=r"the loss never fell .* no lr is suggested.*max_lr"):
        result = learn.lr_find()
    assert result.lrs[-1] > 5 and result.losses[-1] == pytest.approx(math.log(10))  # the whole sweep, flat
    assert all(math.isnan(lr) for lr in result.suggestions.values()) and math.isnan(result.suggestion)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"start_lr": 0}, "start_lr"), ({"mult": 1.0}, "mult must be > 1"), ({"max_iter": 0}, "max_iter")],
)
def test_lr_finder_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRFinder(**kwargs)


# -- TorchScheduler ----------------------------------------------------------------------------
def test_torch_step_lr_per_epoch(learner):
    learn = learner(bs=512, lr=0.1)
    learn.fit(7, cbs=[TorchScheduler(partial(StepLR, step_size=3, gamma=0.1))])
    assert [row["lr"] for row in learn.history] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])


def test_torch_scheduler_per_batch_and_state_dict(learner):
    learn = learner(bs=512, lr=0.1)
    sched = TorchScheduler(partial(ExponentialLR, gamma=0.5), per="batch")
    learn.fit(2, cbs=[sched])
    assert learn.recorder.lrs == pytest.approx([0.1 * 0.5**i for i in range(6)])
    assert learn.recorder.hps["lr"] == learn.recorder.lrs
    assert sched.state_dict()["last_epoch"] == 6
    fresh = TorchScheduler(partial(ExponentialLR, gamma=0.5), per="batch")
    fresh.load_state_dict(sched.state_dict())  # before the scheduler exists: applied in before_fit
    assert fresh.state_dict()["last_epoch"] == 6


def test_reduce_lr_on_plateau_reduces_on_the_valid_loss(learner):
    learn = learner(bs=512, lr=1e-5)  # the valid loss barely moves: a plateau
    factory = partial(ReduceLROnPlateau, factor=0.1, patience=1)
    learn.fit(4, cbs=[TorchScheduler(factory)])
    assert [row["lr"] for row in learn.history] == pytest.approx([1e-5, 1e-5, 1e-5, 1e-6])


@pytest.mark.parametrize("factory", [StepLR, lambda: None])
def test_torch_scheduler_factory_without_optimizer_gets_a_clear_error(learner, factory):
    with pytest.raises(TypeError, match=r"sched_factory must take the optimizer, e\.g\. partial\(StepLR"):
        learner(bs=512).fit(1, cbs=[TorchScheduler(factory)])


def test_torch_scheduler_bad_per():
    with pytest.raises(ValueError, match="per must be 'epoch' or 'batch'"):
        TorchScheduler(partial(StepLR, step_size=1), per="step")


# -- plots -------------------------------------------------------------------------------------
def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_plots_are_real_pngs(learner, tmp_path):
    learn = learner(bs=128, opt_func=partial(SGD, momentum=0.9))
    learn.lr_find().plot(tmp_path / "lr_find.png")
    assert _png_size(tmp_path / "lr_find.png") == (600, 400)
    learn.fit_one_cycle(2, lr_max=0.2)
    fig = learn.recorder.plot_sched(tmp_path / "sched.png")
    assert [ax.get_title() for ax in fig.axes] == ["lr", "momentum"]
    assert _png_size(tmp_path / "sched.png") == (900, 350)
    learn.recorder.plot_lr(tmp_path / "lr.png")
    assert _png_size(tmp_path / "lr.png") == (450, 350)
    fig = learn.lr_find().plot()
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].lines) == 4  # curve + 3 marks


def test_schedules_report_their_settings():
    assert OneCycle(0.5).settings == {"lr_max": 0.5, "pct_start": 0.25, "div": 10, "div_final": 1e5}
    assert ParamScheduler("momentum", sched_lin(0.9, 0.8)).settings == {"params": "momentum"}
    torch_sched = TorchScheduler(partial(StepLR, step_size=3), per="batch")
    assert torch_sched.settings == {"scheduler": "StepLR", "per": "batch"}
