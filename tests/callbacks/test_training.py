"""Training callbacks: NaN guard, gradient clipping, early stopping, best-model saving."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from learnloop import Callback, Learner, load_checkpoint
from learnloop.callbacks import EarlyStopping, GradientClip, SaveBest


def _learner(cbs=(), n: int = 8, lr: float = 0.1, **kwargs) -> Learner:
    torch.manual_seed(0)
    x, y = torch.randn(n + 4, 5), torch.randint(0, 3, (n + 4,))
    dls = type("DLs", (), {"train": DataLoader(TensorDataset(x[:n], y[:n]), batch_size=4),
                           "valid": DataLoader(TensorDataset(x[n:], y[n:]), batch_size=4)})()
    return Learner(torch.nn.Linear(5, 3), dls, lr=lr, cbs=list(cbs), progress=False, **kwargs)


class Script(Callback):
    """Overwrites `key` of each epoch's history row with scripted values, and keeps each epoch's weights."""

    order = 55  # after the Recorder wrote the row, before EarlyStopping and SaveBest read it

    def __init__(self, key: str, values: list[float]):
        self.key, self.values, self.weights = key, values, []

    def after_epoch(self):
        self.history[-1][self.key] = self.values[self.epoch]
        self.weights.append({k: v.clone() for k, v in self.model.state_dict().items()})


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    script = Script("valid_loss", [1.0, 0.5, 0.6, 0.5, 0.7, 0.1, 0.1, 0.1])
    learn = _learner([script, stopper := EarlyStopping(patience=3)])
    learn.fit(8)
    assert len(learn.history) == 5 and stopper.stopped_epoch == 4  # best at epoch 1, then 3 epochs no better
    assert stopper.best == 0.5


def test_early_stopping_min_delta_and_max_mode():
    # improvements smaller than min_delta don't count
    learn = _learner([Script("valid_loss", [1.0, 0.95, 0.9, 0.85, 0.8]), EarlyStopping(patience=2, min_delta=0.1)])
    learn.fit(5)
    assert len(learn.history) == 3
    # accuracy-like names are maximised in auto mode
    stopper = EarlyStopping("valid_accuracy", patience=1)
    assert stopper.mode == "max"
    learn = _learner([Script("valid_accuracy", [0.5, 0.6, 0.7, 0.6, 0.9]), stopper])
    learn.fit(5)
    assert len(learn.history) == 4 and stopper.best == 0.7


def test_unknown_monitor_lists_the_available_keys():
    with pytest.raises(ValueError, match=r"'val_loss', which is not in learn.history.*train_loss, valid_loss, lr"):
        _learner([EarlyStopping("val_loss")]).fit(1)
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="patience must be"):
        EarlyStopping(patience=-1)


def test_save_best_keeps_and_restores_the_best_weights(tmp_path):
    path = tmp_path / "best.pt"
    script = Script("valid_loss", [1.0, 0.2, 0.5, 0.9])
    learn = _learner([script, best := SaveBest(path)])
    learn.fit(4)
    assert best.best_epoch == 1 and load_checkpoint(path)["epoch"] == 1
    for key, value in learn.model.state_dict().items():
        assert torch.equal(value, script.weights[1][key])
    kept = _learner([Script("valid_loss", [1.0, 0.2, 0.5]), SaveBest(tmp_path / "b2.pt", restore=False)])
    kept.fit(3)
    assert not torch.equal(kept.model.weight, load_checkpoint(tmp_path / "b2.pt")["model"]["weight"])


class GradNorm(Callback):
    """Records the global gradient norm the step is taken with (after any clipping)."""

    order = 10

    def __init__(self):
        self.norms = []

    def before_step(self):
        grads = [p.grad.flatten() for p in self.model.parameters()]
        self.norms.append(float(torch.cat(grads).norm()))


def test_gradient_clip_bounds_the_gradient_norm():
    big_loss = lambda p, y: 1000 * torch.nn.functional.cross_entropy(p, y)  # noqa: E731
    free = GradNorm()
    _learner([free], loss_func=big_loss).fit(1)
    assert max(free.norms) > 10
    clipped = GradNorm()
    _learner([GradientClip(1.0), clipped], loss_func=big_loss).fit(1)
    assert max(clipped.norms) <= 1.0 + 1e-4
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        GradientClip(0)


def test_terminate_on_nan_stops_before_the_step_with_a_warning():
    seen = []

    class Steps(Callback):
        def after_step(self):
            seen.append(self.iter)

    learn = _learner([Steps()], loss_func=lambda p, y: p.sum() * math.inf, lr=1e6)
    with pytest.warns(RuntimeWarning, match=r"training loss is (-?inf|nan) at epoch 0, batch 0, lr 1e\+06"):
        learn.fit(2)
    assert seen == [] and torch.isfinite(learn.model.weight).all() and not learn.history
