"""Real Keras callbacks on learnloop, side by side with `keras.Model.fit` (issue 15).

Each test trains the same MLP from the same initial weights on the same digits batches (45 train, 12 valid, in
order) with `keras.Model.fit` (torch backend, SGD) and with learnloop (`learnloop.fit` and a `Learner`), gives
each run its own instance of the same callback, and compares what the callbacks saw and did: hook calls,
logs keys and values, params, lr sequences, when training stopped, the weights left in the model.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # read when keras is first imported
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(f"keras was imported with the {keras.backend.backend()} backend", allow_module_level=True)

import learnloop  # noqa: E402
from learnloop import Learner  # noqa: E402
from learnloop.callbacks import ProgressCallback  # noqa: E402
from learnloop.callbacks import TerminateOnNaN as NaNGuard  # noqa: E402
from learnloop.data import ArrayDataset, DataLoader, DataLoaders  # noqa: E402
from learnloop.data.datasets import digits  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402

BS, LR = 32, 0.1
# Keras's own float(variable) under NumPy 2 (not learnloop's doing)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
         "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
         "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")  # fmt: skip


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened digits as numpy: 1437 train (45 batches of 32), 360 valid (12 batches)."""
    train, valid = digits()
    return train.x.flatten(1).numpy(), train.y.numpy(), valid.x.flatten(1).numpy(), valid.y.numpy()


def torch_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def as_keras(weights: list[np.ndarray]) -> list[np.ndarray]:
    """torch Linear weights (out, in) as Keras Dense kernels (in, out); biases as they are."""
    return [w.T if w.ndim == 2 else w for w in weights]


def keras_fit(data, cbs: list, epochs: int, lr: float = LR, x: np.ndarray | None = None, verbose: int = 0):
    """`keras.Model.fit` on the digits, from torch_mlp's initial weights; the fitted keras model."""
    x_train, y_train, x_valid, y_valid = data
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.set_weights(as_keras([p.detach().numpy() for p in torch_mlp().parameters()]))
    model.compile(optimizer=keras.optimizers.SGD(lr), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train if x is None else x, y_train, batch_size=BS, epochs=epochs, validation_data=(x_valid, y_valid),
              shuffle=False, verbose=verbose, callbacks=cbs)
    return model


def learnloop_fits(data, make_cbs: Callable[[], list], epochs: int, lr: float = LR, x: np.ndarray | None = None,
                   ) -> Iterator[tuple[str, Learner, list]]:  # fmt: skip
    """The same training with `learnloop.fit(...)`, then with a `Learner`, each with fresh callbacks for that fit."""
    x_train, y_train, x_valid, y_valid = data
    x_train = x_train if x is None else x
    cbs = make_cbs()
    learn = learnloop.fit(torch_mlp(), x_train, y_train, epochs=epochs, batch_size=BS, shuffle=False, lr=lr,
                          validation_data=(x_valid, y_valid), callbacks=cbs, metrics=[accuracy], progress=False)
    yield "learnloop.fit", learn, cbs
    cbs = make_cbs()
    dls = DataLoaders(DataLoader(ArrayDataset(x_train, y_train), bs=BS),
                      DataLoader(ArrayDataset(x_valid, y_valid), bs=BS))
    learn = Learner(torch_mlp(), dls, lr=lr, metrics=[accuracy], progress=False)
    learn.fit(epochs, cbs=cbs)
    yield "Learner", learn, cbs


def assert_same_logs(got, expected, how: str) -> None:
    """Equal structure and keys; float values equal to float32 rounding (NaN equals NaN)."""
    if isinstance(expected, dict):
        assert list(got) == list(expected), how
        for key in expected:
            assert_same_logs(got[key], expected[key], f"{how}: {key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), how
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same_logs(g, e, f"{how}[{i}]")
    elif isinstance(expected, np.ndarray):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=how)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6, nan_ok=True), how
    else:
        assert got == expected, how


class HookLog(keras.callbacks.Callback):
    """Every hook call as (hook, index or None, copy of logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []


def _recorder(hook: str) -> Callable:
    if "batch" in hook or "epoch" in hook:
        return lambda self, index, logs=None: self.calls.append((hook, index, dict(logs)))
    return lambda self, logs=None: self.calls.append((hook, None, dict(logs)))


for _hook in HOOKS:
    setattr(HookLog, _hook, _recorder(_hook))


class LegacyBatchEnd(keras.callbacks.Callback):
    """Overrides the legacy `on_batch_end`, which Keras's `on_train_batch_end` forwards to: once per batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def on_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def test_every_hook_params_and_logs_match_keras(data):
    keras_log, keras_legacy = HookLog(), LegacyBatchEnd()
    keras_fit(data, [keras_log, keras_legacy], epochs=2)
    assert len(keras_log.calls) == 1 + 2 * (1 + 2 * 45 + 1 + 2 * 12 + 1 + 1) + 1
    for how, learn, (log, legacy) in learnloop_fits(data, lambda: [HookLog(), LegacyBatchEnd()], epochs=2):
        assert log.params == keras_log.params == {"verbose": 0, "epochs": 2, "steps": 45}, how
        assert_same_logs(log.calls, keras_log.calls, how)
        assert legacy.batches == keras_legacy.batches == list(range(45)) * 2, how
        assert log.model.module is learn.model


# The Keras guide "Writing your own callbacks" (keras-io guides/writing_your_own_callbacks.py), as written there.
class CustomCallback(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        keys = list(logs.keys())
        print("Starting training; got log keys: {}".format(keys))

    def on_train_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop training; got log keys: {}".format(keys))

    def on_epoch_begin(self, epoch, logs=None):
        keys = list(logs.keys())
        print("Start epoch {} of training; got log keys: {}".format(epoch, keys))

    def on_epoch_end(self, epoch, logs=None):
        keys = list(logs.keys())
        print("End epoch {} of training; got log keys: {}".format(epoch, keys))

    def on_test_begin(self, logs=None):
        keys = list(logs.keys())
        print("Start testing; got log keys: {}".format(keys))

    def on_test_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop testing; got log keys: {}".format(keys))

    def on_predict_begin(self, logs=None):
        keys = list(logs.keys())
        print("Start predicting; got log keys: {}".format(keys))

    def on_predict_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop predicting; got log keys: {}".format(keys))

    def on_train_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Training: start of batch {}; got log keys: {}".format(batch, keys))

    def on_train_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Training: end of batch {}; got log keys: {}".format(batch, keys))

    def on_test_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Evaluating: start of batch {}; got log keys: {}".format(batch, keys))

    def on_test_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Evaluating: end of batch {}; got log keys: {}".format(batch, keys))

    def on_predict_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Predicting: start of batch {}; got log keys: {}".format(batch, keys))

    def on_predict_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Predicting: end of batch {}; got log keys: {}".format(batch, keys))


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    """Stop training when the loss is at its min, i.e. the loss stops decreasing.

    Arguments:
        patience: Number of epochs to wait after min has been hit. After this
        number of no improvement, training stops.
    """

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        # best_weights to store the weights at which the minimum loss occurs.
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # The number of epoch it has waited when loss is no longer minimum.
        self.wait = 0
        # The epoch the training stops at.
        self.stopped_epoch = 0
        # Initialize the best as infinity.
        self.best = np.inf  # the guide's np.Inf is gone from NumPy 2

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            # Record the best weights if current results is better (less).
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class CustomLearningRateScheduler(keras.callbacks.Callback):
    """Learning rate scheduler which sets the learning rate according to schedule.

    Arguments:
        schedule: a function that takes an epoch index
            (integer, indexed from 0) and current learning rate
            as inputs and returns a new learning rate as output (float).
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        # Get the current learning rate from model's optimizer.
        lr = self.model.optimizer.learning_rate
        # Call schedule function to get the scheduled learning rate.
        scheduled_lr = self.schedule(epoch, lr)
        # Set the value back to the optimizer before this epoch starts
        self.model.optimizer.learning_rate = scheduled_lr
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [
    # (epoch to start, learning rate) tuples
    (3, 0.05),
    (6, 0.01),
    (9, 0.005),
    (12, 0.001),
]


def lr_schedule(epoch, lr):
    """Helper function to retrieve the scheduled learning rate based on epoch."""
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr


# -- end of the guide's code -----------------------------------------------------------------------------------


class LearningRates(keras.callbacks.Callback):
    """The optimizer's learning rate at each epoch's end."""

    def on_train_begin(self, logs=None):
        self.lrs = []

    def on_epoch_end(self, epoch, logs=None):
        self.lrs.append(float(np.array(self.model.optimizer.learning_rate)))


def test_guide_custom_callback_prints_the_same_hooks_and_keys(data, capsys):
    x_valid, y_valid = data[2:]
    model = keras_fit(data, [CustomCallback()], epochs=1)  # the guide: fit, then evaluate and predict
    model.evaluate(x_valid, y_valid, batch_size=BS, verbose=0, callbacks=[CustomCallback()])
    model.predict(x_valid, batch_size=BS, verbose=0, callbacks=[CustomCallback()])
    expected = capsys.readouterr().out
    assert expected.count("...Training: end of batch") == 45 and expected.count("...Evaluating: end of batch") == 24
    assert expected.count("...Predicting: end of batch 11; got log keys: ['outputs']") == 1
    assert "End epoch 0 of training; got log keys: ['accuracy', 'loss', 'val_accuracy', 'val_loss']" in expected
    for how, learn, _ in learnloop_fits(data, lambda: [CustomCallback()], epochs=1):
        learn.validate(cbs=[CustomCallback()])
        learn.get_preds(cbs=[CustomCallback()])
        assert capsys.readouterr().out == expected, how


def test_validate_and_get_preds_fire_hooks_as_evaluate_and_predict(data):
    x_valid, y_valid = data[2:]
    model = keras_fit(data, [], epochs=1)
    evaluated, predicted = HookLog(), HookLog()
    model.evaluate(x_valid, y_valid, batch_size=BS, verbose=0, callbacks=[evaluated])
    model.predict(x_valid, batch_size=BS, verbose=0, callbacks=[predicted])
    assert [c[1] for c in predicted.calls if c[0] == "on_predict_batch_end"] == list(range(12))
    for how, learn, _ in learnloop_fits(data, list, epochs=1):
        log = HookLog()
        results = learn.validate(cbs=[log])
        assert log.params == evaluated.params == {"verbose": 0, "epochs": 1, "steps": 12}, how
        assert_same_logs(log.calls, evaluated.calls, how)
        assert log.calls[-1][2] == pytest.approx(results), how  # on_test_end: what validate returns
        log = HookLog()
        preds, _ = learn.get_preds(cbs=[log])
        assert_same_logs(log.calls, predicted.calls, how)  # outputs: each batch's, as numpy
        assert np.array_equal(np.concatenate([c[2]["outputs"] for c in log.calls[2::2]]), preds.numpy())


def test_guide_custom_learning_rate_scheduler(data, capsys):
    keras_lrs, keras_log = LearningRates(), HookLog()
    keras_fit(data, [CustomLearningRateScheduler(lr_schedule), keras_lrs, keras_log], epochs=4)
    assert keras_lrs.lrs == pytest.approx([0.1, 0.1, 0.1, 0.05])
    capsys.readouterr()
    make = lambda: [CustomLearningRateScheduler(lr_schedule), LearningRates(), HookLog()]  # noqa: E731
    for how, learn, (_, lrs, log) in learnloop_fits(data, make, epochs=4):
        assert lrs.lrs == pytest.approx(keras_lrs.lrs), how
        assert learn.opt.param_groups[0]["lr"] == pytest.approx(0.05), how
        assert_same_logs(log.calls, keras_log.calls, how)  # the lr change shows in the same losses
        assert capsys.readouterr().out.count("Learning rate is") == 4


def test_guide_early_stopping_at_min_loss_restores_the_best_weights(data, capsys):
    def make():  # the lr jumps at epoch 2, so the loss rises and the guide's callback stops and restores epoch 1
        return [EarlyStoppingAtMinLoss(), keras.callbacks.LearningRateScheduler(lambda e, lr: 3.0 if e == 2 else lr),
                HookLog()]

    stop, _, keras_log = cbs = make()
    model = keras_fit(data, cbs, epochs=6)
    expected = capsys.readouterr().out
    assert stop.stopped_epoch == 2 and "Epoch 3: early stopping" in expected
    for how, learn, (stop, _, log) in learnloop_fits(data, make, epochs=6):
        assert capsys.readouterr().out == expected, how
        assert len(learn.history) == 3, how
        assert_same_logs(log.calls, keras_log.calls, how)
        weights = [p.detach().numpy() for p in learn.model.parameters()]
        assert all(np.array_equal(w, b) for w, b in zip(weights, stop.best_weights)), how
        assert_same_logs([w.tolist() for w in as_keras(weights)], [w.tolist() for w in model.get_weights()], how)


@pytest.mark.parametrize("monitor, min_delta", [("val_loss", 0.1), ("val_accuracy", 0.01)])
def test_early_stopping_stops_and_restores_best_weights_as_keras(data, monitor, min_delta):
    def make():
        return [keras.callbacks.EarlyStopping(monitor=monitor, min_delta=min_delta, patience=1,
                                              restore_best_weights=True), keras.callbacks.History()]

    stop, history = cbs = make()
    model = keras_fit(data, cbs, epochs=10)
    assert 0 < stop.best_epoch < stop.stopped_epoch < 9  # it stopped early, and restored an earlier epoch
    for how, learn, (es, hist) in learnloop_fits(data, make, epochs=10):
        assert (es.stopped_epoch, es.best_epoch, hist.epoch) == (stop.stopped_epoch, stop.best_epoch, history.epoch)
        assert len(learn.history) == len(history.epoch), how
        assert_same_logs(hist.history, history.history, how)
        weights = as_keras([p.detach().numpy() for p in learn.model.parameters()])
        assert_same_logs([w.tolist() for w in weights], [w.tolist() for w in model.get_weights()], how)


def test_reduce_lr_on_plateau_lowers_the_lr_as_keras(data):
    def make():
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_delta=0.3),
                LearningRates(), keras.callbacks.History()]

    _, keras_lrs, history = cbs = make()
    keras_fit(data, cbs, epochs=5)
    assert keras_lrs.lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])  # val_loss improved by < 0.3 at epoch 3
    for how, learn, (_, lrs, hist) in learnloop_fits(data, make, epochs=5):
        assert lrs.lrs == pytest.approx(keras_lrs.lrs), how
        assert learn.lr == pytest.approx(0.05), how
        assert_same_logs(hist.history, history.history, how)  # `learning_rate` added to the logs, as in Keras


def test_learning_rate_scheduler_sets_each_epochs_lr_as_keras(data):
    def make():
        return [keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr),
                keras.callbacks.History()]

    _, history = cbs = make()
    keras_fit(data, cbs, epochs=3)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    for how, learn, (_, hist) in learnloop_fits(data, make, epochs=3):
        assert_same_logs(hist.history, history.history, how)
        assert learn.opt.param_groups[0]["lr"] == pytest.approx(0.025), how


class ValScore(keras.callbacks.Callback):
    """Adds a key to the epoch's logs; the callbacks after it see it (Keras passes one dict along)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = 1 - logs["val_loss"]


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_csv_logger_writes_the_same_file_and_sees_keys_added_before_it(data, tmp_path):
    keras_fit(data, [ValScore(), keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"))], epochs=2)
    expected = read_csv(tmp_path / "keras.csv")
    assert list(expected[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "val_score"]
    paths = iter([tmp_path / "fit.csv", tmp_path / "learner.csv"])
    for how, _, (_, logger) in learnloop_fits(data, lambda: [ValScore(), keras.callbacks.CSVLogger(str(next(paths)))],
                                              epochs=2):
        assert_same_logs(read_csv(logger.filename), expected, how)


def test_lambda_callback_gets_positional_arguments(data):
    def make():
        calls = []
        return [keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: calls.append(("begin", dict(logs))),
            on_epoch_end=lambda epoch, logs: calls.append((epoch, dict(logs))),
            on_train_batch_end=lambda batch, logs: calls.append((batch, logs["loss"])),
            on_test_end=lambda logs: calls.append(("test", dict(logs))),
            calls=calls,  # LambdaCallback keeps extra keyword arguments as attributes
        )]

    (expected,) = cbs = make()
    keras_fit(data, cbs, epochs=2)
    assert len(expected.calls) == 1 + 2 * (45 + 1 + 1)
    for how, _, (cb,) in learnloop_fits(data, make, epochs=2):
        assert_same_logs(cb.calls, expected.calls, how)


def test_lambda_callback_hooks_with_any_parameter_names(data):
    """Keras passes a batch hook's logs as `logs=`, so there `lambda b, l: ...` fails; learnloop passes them
    positionally, so any names work, and the calls are the ones Keras makes to `lambda batch, logs: ...`."""
    def make(named: bool):
        calls = []
        batch_end = (lambda batch, logs: calls.append((batch, logs["loss"]))) if named else (
            lambda b, l: calls.append((b, l["loss"])))  # noqa: E741
        return [keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, l: calls.append(("epoch", e, dict(l))),  # noqa: E741
            on_epoch_end=lambda e, l: calls.append((e, dict(l))),  # noqa: E741
            on_train_batch_end=batch_end, on_train_end=lambda l: calls.append(("end", dict(l))),  # noqa: E741
            calls=calls,
        )]

    (expected,) = cbs = make(named=True)
    keras_fit(data, cbs, epochs=2)
    assert len(expected.calls) == 2 * (1 + 45 + 1) + 1
    for how, _, (cb,) in learnloop_fits(data, lambda: make(named=False), epochs=2):
        assert_same_logs(cb.calls, expected.calls, how)


def test_terminate_on_nan_stops_after_the_epoch_as_keras(data, capsys):
    x_nan = data[0].copy()
    x_nan[10 * BS + 5, 3] = np.nan  # batch 10's loss is NaN, and so is every running mean after it
    make = lambda: [keras.callbacks.TerminateOnNaN(), HookLog(), keras.callbacks.History()]  # noqa: E731
    _, keras_log, history = cbs = make()
    keras_fit(data, cbs, epochs=3, x=x_nan)
    assert [c[1] for c in keras_log.calls if c[0] == "on_train_batch_end"] == list(range(11))
    assert np.isnan(history.history["val_loss"][0]) and len(history.epoch) == 1
    expected = capsys.readouterr().out
    assert "Batch 10: Invalid loss, terminating training" in expected
    for how, learn, (_, log, hist) in learnloop_fits(data, make, epochs=3, x=x_nan):
        assert capsys.readouterr().out == expected, how
        assert_same_logs(log.calls, keras_log.calls, how)
        assert_same_logs(hist.history, history.history, how)
        guards = [cb for cb in learn.cbs if isinstance(cb, NaNGuard)]
        assert len(guards) == 1 and guards[0].active, how  # learnloop's own guard is back on


def progbar_lines(out: str) -> list[str]:
    """The epoch headers and each epoch's final bar (the metrics after the last step), without the timings."""
    found = re.findall(r"(Epoch \d+/\d+)|45/45\x1b\[0m .*? - (accuracy: [^\x08\r\n]*)\n", out)
    return [header or bar for header, bar in found]


def test_progbar_logger_and_history_as_keras(data, capsys):
    keras_history = keras.callbacks.History()
    model = keras_fit(data, [keras.callbacks.ProgbarLogger(), keras_history], epochs=2, verbose=1)
    expected = progbar_lines(capsys.readouterr().out)
    assert len(expected) == 4 and "val_loss" in expected[1]
    assert model.history is keras_history and keras_history.params["verbose"] == 1

    def make():  # learnloop's own per-epoch table printed elsewhere: then Keras callbacks get verbose=1
        return [keras.callbacks.ProgbarLogger(), keras.callbacks.History(), ProgressCallback(file=io.StringIO())]

    for how, _, (_, history, _) in learnloop_fits(data, make, epochs=2):
        got = progbar_lines(capsys.readouterr().out)
        assert [re.sub(r"\d\.\d+", "#", line) for line in got] == [re.sub(r"\d\.\d+", "#", line) for line in expected]
        numbers = [[float(v) for v in re.findall(r"\d\.\d+", line)] for line in got + expected]
        assert numbers[:len(got)] == [pytest.approx(values, abs=2e-4) for values in numbers[len(got):]], how
        assert history.model.history is history and history.params == keras_history.params, how
        assert_same_logs(history.history, keras_history.history, how)


@pytest.mark.parametrize("make, instead", [
    (lambda tmp: keras.callbacks.ModelCheckpoint(str(tmp / "best.keras")), "SaveBest"),
    (lambda tmp: keras.callbacks.BackupAndRestore(str(tmp / "backup")), "Checkpoint"),
    (lambda tmp: keras.callbacks.TensorBoard(str(tmp / "tb")), "TensorBoardCallback"),
])  # fmt: skip
def test_keras_file_format_callbacks_stop_at_once_naming_learnloops(make, instead, tmp_path, make_dls, make_mlp):
    cb = make(tmp_path)
    with pytest.raises(TypeError, match=rf"keras.callbacks.{type(cb).__name__} .* use learnloop.callbacks.{instead}"):
        Learner(make_mlp(), make_dls(), cbs=[cb], progress=False)
    learn = Learner(make_mlp(), make_dls(), progress=False)
    with pytest.raises(TypeError, match=instead):
        learn.fit(1, cbs=[cb])
    assert learn.history == []  # refused before training
