"""fine_tune as fastai defines it, run as one fit: frozen then unfrozen, its lrs per group at every batch, one
history, and a resume anywhere in it equal to the uninterrupted run."""

from __future__ import annotations

import warnings
from functools import partial

import pytest
import torch

from learnloop import Callback, Learner
from learnloop.callbacks import Checkpoint, FineTune
from learnloop.callbacks.schedule import OneCycle
from learnloop.data import ArrayDataset, DataLoader, DataLoaders
from learnloop.metrics import accuracy
from learnloop.nn.models import bn_cnn
from learnloop.optim import SGD


def make_learner(digits_tensors, n: int = 256, **kwargs) -> Learner:
    xt, yt, xv, yv = digits_tensors
    torch.manual_seed(0)
    dls = DataLoaders(DataLoader(ArrayDataset(xt[:n], yt[:n]), 32, shuffle=True),
                      DataLoader(ArrayDataset(xv, yv), 128))
    kwargs.setdefault("progress", False)
    return Learner(bn_cnn(1, 10, widths=(16, 32), strides=(2, 2)), dls, opt_func=partial(SGD, momentum=0.9), metrics=[accuracy],
                   **kwargs)


class Watch(Callback):
    """Per training batch: the lr of each group and whether the first conv trains; the body's weights per epoch."""

    order = 20  # after FineTune (10) set this batch's lrs

    def before_fit(self):
        self.lrs, self.body_trains, self.body = [], [], []

    def before_batch(self):
        if self.training:
            self.lrs.append([g["lr"] for g in self.learn.opt.param_groups])
            self.body_trains.append(self.learn.model[0].weight.requires_grad)

    def after_epoch(self):
        self.body.append(self.learn.model[0].weight.detach().clone())


def test_fine_tune_trains_the_head_frozen_then_everything_at_discriminative_lrs(digits_tensors):
    learn = make_learner(digits_tensors)
    start = learn.model[0].weight.detach().clone()
    watch = Watch()
    learn.fine_tune(2, base_lr=0.3, freeze_epochs=1, cbs=[watch])
    n = len(learn.dls.train)
    assert [row["epoch"] for row in learn.history] == [0, 1, 2]  # one run, its epochs numbered on
    assert watch.body_trains == [False] * n + [True] * 2 * n
    assert torch.equal(watch.body[0], start) and not torch.equal(watch.body[1], start)
    frozen = OneCycle(0.3, pct_start=0.99)._lr_sched(0.3)
    unfrozen = OneCycle(0.15, pct_start=0.3, div=5)._lr_sched(0.15)
    for i, (body, head) in enumerate(watch.lrs[:n]):  # slice(base_lr): head at base_lr, body at base_lr/10
        assert head == pytest.approx(frozen(i / n), rel=1e-12) and body == pytest.approx(head / 10, rel=1e-9)
    for i, (body, head) in enumerate(watch.lrs[n:]):  # slice(base_lr/2/lr_mult, base_lr/2)
        assert head == pytest.approx(unfrozen(i / (2 * n)), rel=1e-12) and body == pytest.approx(head / 100, rel=1e-9)
    assert watch.lrs[n][1] == pytest.approx(0.15 / 5)  # the second cycle starts at its own lr_max/div
    assert learn.layer_groups.n_frozen == 0
    losses = [row["valid_loss"] for row in learn.history]  # a random body on 256 digits: slow, but learning
    assert losses == sorted(losses, reverse=True) and learn.history[-1]["valid_accuracy"] > 0.4


def test_fine_tune_checks_its_arguments(digits_tensors):
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        make_learner(digits_tensors).fine_tune(0)
    with pytest.raises(ValueError, match="needs a fit of 3 epochs"):
        make_learner(digits_tensors).fit(2, cbs=[FineTune(2)])


class StopAt(Callback):
    """Ctrl-C after training batch `at` of the fit (between batches: a checkpoint is written there)."""

    order = 95

    def __init__(self, at: int):
        self.at = at

    def after_batch(self):
        if self.training and self.learn.train_iter == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["frozen, mid-epoch", "at the unfreeze", "unfrozen, mid-epoch"])
def test_resume_in_the_middle_of_a_fine_tune_is_exact(digits_tensors, tmp_path, where):
    expected = make_learner(digits_tensors)
    expected.fine_tune(2, base_lr=0.05)
    n = len(expected.dls.train)
    at = {"frozen, mid-epoch": n // 2, "at the unfreeze": n - 1, "unfrozen, mid-epoch": n + n // 2 + 1}[where]
    path = tmp_path / "last.ckpt"
    stopped = make_learner(digits_tensors)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stopped.fine_tune(2, base_lr=0.05, cbs=[Checkpoint(path, every_n_batches=3), StopAt(at)])
    resumed = make_learner(digits_tensors)
    resumed.fine_tune(2, base_lr=0.05, cbs=[Checkpoint(path, every_n_batches=3)], resume=path)
    for a, b in zip(expected.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop_time(resumed.history) == drop_time(expected.history)
