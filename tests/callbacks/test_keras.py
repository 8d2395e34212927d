"""Keras-style callbacks (seeds 000 and 002) run inside the learnloop loop."""

from __future__ import annotations

import pytest

from learnloop import Learner
from learnloop.callbacks import KerasCallback
from learnloop.metrics import accuracy


class Seed002Callback:
    """Seed 002's signatures: `on_epoch_end(self, epoch, logs=None)`, ..."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, logs))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", logs))


class Seed000Callback:
    """Seed 000's signatures: `on_batch_end(self, batch_idx, loss, kwargs)`, ..."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, kwargs):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, kwargs):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch_idx, loss, kwargs):
        self.calls.append(("batch_end", batch_idx, loss))

    def on_train_end(self, kwargs):
        self.calls.append("train_end")


def test_seed_002_call_order_epochs_and_logs(make_dls, make_mlp):
    cb = Seed002Callback()
    dls = make_dls(bs=256)
    learn = Learner(make_mlp(), dls, lr=0.1, cbs=[cb], metrics=[accuracy], progress=False)
    learn.fit(2)
    kinds = [c[0] for c in cb.calls]
    n = len(dls.train)
    per_epoch = ["epoch_begin"] + ["batch_begin", "batch_end"] * n + ["epoch_end"]
    assert kinds == ["train_begin"] + per_epoch * 2 + ["train_end"]
    epoch_ends = [c for c in cb.calls if c[0] == "epoch_end"]
    assert [c[1] for c in epoch_ends] == [0, 1]
    logs = epoch_ends[1][2]
    assert set(logs) == {"loss", "val_loss", "val_accuracy", "lr"}
    assert logs["val_loss"] == learn.history[1]["valid_loss"]
    assert logs["loss"] == learn.history[1]["train_loss"]
    batch_ends = [c for c in cb.calls if c[0] == "batch_end"]
    assert [c[1] for c in batch_ends[:n]] == list(range(n))
    assert batch_ends[0][2]["loss"] == pytest.approx(learn.recorder.losses[0], rel=1e-6)


def test_seed_000_signatures_get_batch_idx_and_loss(make_dls, make_mlp):
    cb = Seed000Callback()
    learn = Learner(make_mlp(), make_dls(bs=256), lr=0.1, cbs=[cb], progress=False)
    learn.fit(1)
    assert cb.calls[0] == "train_begin" and cb.calls[-1] == "train_end"
    batch_ends = [c for c in cb.calls if isinstance(c, tuple) and c[0] == "batch_end"]
    assert [c[1] for c in batch_ends] == list(range(len(batch_ends)))
    assert [c[2] for c in batch_ends] == pytest.approx(learn.recorder.losses, rel=1e-6)


def test_keras_objects_are_wrapped_and_model_is_set(make_dls, make_mlp):
    cb = Seed002Callback()
    learn = Learner(make_mlp(), make_dls(), cbs=[cb], progress=False)
    wrapped = [c for c in learn.cbs if isinstance(c, KerasCallback)]
    assert len(wrapped) == 1 and wrapped[0].obj is cb
    learn.fit(1)
    assert cb.model is learn.model


def test_stop_training_stops_the_fit(make_dls, make_mlp):
    class StopAfterFirstEpoch:
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    learn = Learner(make_mlp(), make_dls(), cbs=[StopAfterFirstEpoch()], progress=False)
    learn.fit(5)
    assert len(learn.history) == 1


def test_non_callback_objects_are_refused(make_dls, make_mlp):
    with pytest.raises(TypeError, match="not a callback"):
        Learner(make_mlp(), make_dls(), cbs=[object()], progress=False)
    with pytest.raises(TypeError, match=r"pass Seed002Callback\(\)"):
        Learner(make_mlp(), make_dls(), cbs=[Seed002Callback], progress=False)
