"""Keras-style callbacks (seeds 000 and 002) run inside the learnloop loop; real Keras: test_keras_real.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from learnloop import Callback, Learner
from learnloop.callbacks import KerasCallback
from learnloop.callbacks.keras import KerasModel
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


class TrainAccuracy(Callback):
    """Each training batch's (number correct, size), computed here independently of the Keras adapter."""

    def before_fit(self):
        self.batches = []

    def after_loss(self):
        if self.learn.training:
            self.batches.append((int((self.learn.preds.argmax(-1) == self.learn.yb).sum()), len(self.learn.yb)))


def test_seed_002_call_order_epochs_and_logs(make_dls, make_mlp):
    cb, train_acc = Seed002Callback(), TrainAccuracy()
    dls = make_dls(bs=256)
    learn = Learner(make_mlp(), dls, lr=0.1, cbs=[cb, train_acc], metrics=[accuracy], progress=False)
    learn.fit(2)
    kinds = [c[0] for c in cb.calls]
    n = len(dls.train)
    per_epoch = ["epoch_begin"] + ["batch_begin", "batch_end"] * n + ["epoch_end"]
    assert kinds == ["train_begin"] + per_epoch * 2 + ["train_end"]
    epoch_ends = [c for c in cb.calls if c[0] == "epoch_end"]
    assert [c[1] for c in epoch_ends] == [0, 1]
    logs = epoch_ends[1][2]
    assert list(logs) == ["accuracy", "loss", "val_accuracy", "val_loss"]  # Keras's keys, sorted as Keras sorts them
    assert logs["val_loss"] == pytest.approx(learn.history[1]["valid_loss"], rel=1e-6)
    assert logs["val_accuracy"] == pytest.approx(learn.history[1]["valid_accuracy"], rel=1e-6)
    assert logs["loss"] == pytest.approx(learn.history[1]["train_loss"], rel=1e-6)
    correct, sizes = np.array(train_acc.batches[n:]).T  # epoch 1: the share of its samples predicted right
    assert logs["accuracy"] == pytest.approx(correct.sum() / sizes.sum(), rel=1e-6)
    batch_ends = [c for c in cb.calls if c[0] == "batch_end"]
    assert [c[1] for c in batch_ends[:n]] == list(range(n))
    # logs["loss"] at a batch's end is the mean over the epoch so far (equal-sized batches here), as in Keras
    losses = learn.recorder.losses
    for k in (0, 1, n - 2):
        assert batch_ends[n + k][2]["loss"] == pytest.approx(np.mean(losses[n:n + k + 1]), rel=1e-5)


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
    assert isinstance(cb.model, KerasModel) and cb.model.module is learn.model


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


class PositionalHooks:
    """Keras signatures under other names, `**kwargs`, and a `model` attribute set to None by the user."""

    def __init__(self):
        self.model, self.calls, self.batches = None, [], []

    def on_epoch_end(self, ep, logs=None, **kwargs):
        self.calls.append((ep, logs))

    def on_batch_end(self, b, logs):
        self.batches.append(b)
        if b == 2:
            self.model.stop_training = True


def test_hooks_are_called_positionally_and_stop_training_finishes_the_epoch(make_dls, make_mlp):
    cb = PositionalHooks()
    learn = Learner(make_mlp(), make_dls(), lr=0.1, cbs=[cb], metrics=[accuracy], progress=False)
    learn.fit(3)
    assert isinstance(cb.model, KerasModel) and cb.batches == [0, 1, 2]
    # stop_training at batch 2: no more training batches, but validation runs and on_epoch_end gets val_*
    assert [ep for ep, _ in cb.calls] == [0] and len(learn.history) == 1
    assert list(cb.calls[0][1]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(learn.recorder.losses) == 3
    assert cb.calls[0][1]["loss"] == pytest.approx(np.mean(learn.recorder.losses), rel=1e-6)


def test_one_logs_dict_is_passed_along(make_dls, make_mlp):
    class AddScore:
        def on_epoch_end(self, epoch, logs):
            logs["val_score"] = 1 - logs["val_loss"]

    class Seen:
        def on_epoch_end(self, epoch, logs):
            self.logs = dict(logs)

    seen = Seen()
    learn = Learner(make_mlp(), make_dls(), cbs=[AddScore(), seen], progress=False)
    learn.fit(1)
    assert seen.logs["val_score"] == pytest.approx(1 - learn.history[0]["valid_loss"], rel=1e-6)


def test_keras_model_surface_weights_lr_and_predict(make_dls):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 10))
    learn = Learner(net, make_dls(), lr=0.1, progress=False)
    model = KerasModel(learn)
    weights = model.get_weights()
    # parameters, then buffers (BatchNorm's running stats and counter), as numpy copies
    expected = [*net.parameters(), *net.buffers()]
    assert [w.shape for w in weights] == [tuple(t.shape) for t in expected] and len(weights) == 9
    learn.fit(1)
    assert not np.allclose(weights[0], net[1].weight.detach().numpy())  # a copy: training did not change it
    model.set_weights(weights)
    assert all(np.array_equal(w, t.detach().numpy()) for w, t in zip(weights, [*net.parameters(), *net.buffers()]))
    with pytest.raises(ValueError, match="got 8 arrays; the model has 9"):
        model.set_weights(weights[:-1])
    with pytest.raises(ValueError, match=r"array 0 has shape \(3,\)"):
        model.set_weights([np.zeros(3)] + weights[1:])
    assert np.array_equal(model.get_weights()[0], weights[0])  # a failed set_weights changes nothing

    assert model.optimizer.learning_rate == 0.1
    model.optimizer.learning_rate = np.float32(0.05)
    assert learn.lr == pytest.approx(0.05) and learn.opt.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(AttributeError, match="learning_rate"):
        model.optimizer.iterations_count  # noqa: B018

    x = np.random.default_rng(0).random((70, 1, 8, 8), dtype=np.float32)
    net.train()
    preds = model.predict(x, batch_size=32)
    assert net.training  # put back in training mode
    net.eval()
    assert np.allclose(preds, net(torch.from_numpy(x)).detach().numpy(), atol=1e-6)
    assert model.state_dict().keys() == net.state_dict().keys()  # anything else is the torch module's
    with pytest.raises(AttributeError, match="neither on learnloop's Keras model"):
        model.save_weights("w.h5")


def test_a_validate_run_from_inside_the_fit_leaves_keras_hooks_and_logs_alone(make_dls, make_mlp):
    class EvalTrainSet(Callback):
        order = 60  # after the Recorder wrote the epoch's row, before the Keras callbacks get on_epoch_end

        def after_epoch(self):
            self.results = self.learn.validate(self.dls.train)

    class Hooks:
        def __init__(self):
            self.tests, self.logs = 0, []

        def on_test_begin(self, logs):
            self.tests += 1

        def on_epoch_end(self, epoch, logs):
            self.logs.append(logs)

    hooks, evaluate = Hooks(), EvalTrainSet()
    learn = Learner(make_mlp(), make_dls(), lr=0.1, cbs=[evaluate, hooks], progress=False)
    learn.fit(2)
    assert hooks.tests == 2  # the fit's own validations only
    assert [logs["val_loss"] for logs in hooks.logs] == pytest.approx([row["valid_loss"] for row in learn.history])
    assert evaluate.results["loss"] != pytest.approx(learn.history[-1]["valid_loss"], rel=1e-3)


def test_an_error_in_a_hook_names_the_object_and_method(make_dls, make_mlp):
    class Broken:
        def on_batch_end(self, batch, logs):
            raise KeyError("val_score")

    learn = Learner(make_mlp(), make_dls(), cbs=[Broken()], progress=False)
    with pytest.raises(KeyError) as info:
        learn.fit(1)
    assert "raised in the Keras callback Broken.on_batch_end" in info.value.__notes__


def test_plain_keras_style_objects_never_import_keras(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(
        "import sys\n"
        "import numpy as np\n"
        "import torch\n"
        "import learnloop\n"
        "class Stop:\n"
        "    def on_epoch_end(self, epoch, logs):\n"
        "        self.model.stop_training = logs['loss'] > 0\n"
        "x, y = np.random.default_rng(0).random((64, 4), dtype=np.float32), np.arange(64) % 2\n"
        "learn = learnloop.fit(torch.nn.Linear(4, 2), x, y, epochs=3, callbacks=[Stop()], progress=False)\n"
        "print(len(learn.history), 'keras' in sys.modules)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"  # this checkout's learnloop, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True,
                         env=env)
    assert out.stdout.split() == ["1", "False"]
