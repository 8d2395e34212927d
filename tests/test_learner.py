"""The Learner contract: event order, cancel exceptions, dispatch, callbacks, evaluation."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import learnloop
from learnloop import (
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidateException,
    Learner,
)
from learnloop import EVENTS
from learnloop.metrics import accuracy

BATCH_EVENTS = ["before_batch", "after_pred", "after_loss"]
TRAIN_BATCH = BATCH_EVENTS + ["before_backward", "after_backward", "before_step", "after_step", "after_batch"]
VALID_BATCH = BATCH_EVENTS + ["after_batch"]


class EventLog(Callback):
    """Records every event it sees, and raises `raise_at[event]` at the given batch."""

    def __init__(self, raise_at: dict | None = None):
        self.events, self.raise_at = [], raise_at or {}

    def _log(self, event):
        self.events.append(event)
        exc = self.raise_at.get(event)
        if exc is not None and (event != "before_batch" or self.learn.iter == 1):
            raise exc()


for _event in EVENTS:
    setattr(EventLog, _event, lambda self, e=_event: self._log(e))


def tiny_dls(n_train=4, n_valid=2, bs=2):
    torch.manual_seed(0)
    x, y = torch.randn(n_train + n_valid, 3), torch.randint(0, 2, (n_train + n_valid,))
    train = DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs)
    valid = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=bs)
    return type("DLs", (), {"train": train, "valid": valid})()


def tiny_learner(cbs=(), **kwargs):
    return Learner(torch.nn.Linear(3, 2), tiny_dls(), lr=0.1, cbs=list(cbs), progress=False, **kwargs)


def test_event_order_for_one_epoch():
    log = EventLog()
    tiny_learner([log]).fit(1)
    expected = (
        ["before_fit", "before_epoch", "before_train"] + TRAIN_BATCH * 2 + ["after_train", "before_validate"]
        + VALID_BATCH + ["after_validate", "after_epoch", "after_fit"]
    )  # fmt: skip
    assert log.events == expected


@pytest.mark.parametrize(
    "event, exc, expected_tail",
    [
        ("before_batch", CancelBatchException, ["before_batch", "after_cancel_batch", "after_batch"]),
        ("after_backward", CancelBatchException, ["after_backward", "after_cancel_batch", "after_batch"]),
        ("before_step", CancelStepException, ["before_step", "after_cancel_step", "after_step", "after_batch"]),
        ("before_train", CancelTrainException, ["before_train", "after_cancel_train", "after_train", "before_validate"]),
        ("before_validate", CancelValidateException, ["before_validate", "after_cancel_validate", "after_validate", "after_epoch"]),
        ("before_epoch", CancelEpochException, ["before_epoch", "after_cancel_epoch", "after_epoch", "after_fit"]),
        ("before_fit", CancelFitException, ["before_fit", "after_cancel_fit", "after_fit"]),
    ],
)  # fmt: skip
def test_each_cancel_exception_skips_its_phase_and_runs_its_after_events(event, exc, expected_tail):
    log = EventLog(raise_at={event: exc})
    tiny_learner([log]).fit(1)
    i = log.events.index(event) if event != "before_batch" else _second(log.events, "before_batch")
    assert log.events[i : i + len(expected_tail)] == expected_tail
    assert log.events[-1] == "after_fit"


def _second(events, name):
    return [i for i, e in enumerate(events) if e == name][1]


def test_cancel_batch_skips_the_step():
    learn = tiny_learner([EventLog(raise_at={"after_backward": CancelBatchException})])
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_cancel_step_skips_step_and_zero_grad_of_that_batch_only():
    class SkipFirstStep(Callback):
        def before_backward(self):
            self.grad_in[self.iter] = self.model.weight.grad  # None after a step's zero_grad
            self.weight_in[self.iter] = self.model.weight.detach().clone()

        def before_step(self):
            self.grad_to_step = self.model.weight.grad.clone()
            if self.iter == 0:
                raise CancelStepException()

        def after_cancel_step(self):
            self.cancelled.append(self.iter)

    skip = SkipFirstStep()
    skip.grad_in, skip.weight_in, skip.cancelled = {}, {}, []
    learn = tiny_learner([skip])  # 2 training batches
    learn.fit(1)
    assert skip.cancelled == [0] and torch.equal(skip.weight_in[1], skip.weight_in[0])  # batch 0: no step
    assert skip.grad_in[0] is None and skip.grad_in[1] is not None  # nor zero_grad: batch 1 adds to its gradient
    torch.testing.assert_close(learn.model.weight.detach(), skip.weight_in[1] - 0.1 * skip.grad_to_step)
    assert learn.model.weight.grad is None  # the step that ran was followed by zero_grad


def test_cancel_fit_at_batch_3_stops_there_and_after_fit_sees_the_model(make_dls, make_mlp):
    class StopAt3(Callback):
        def after_batch(self):
            self.seen.append(self.iter)
            if self.training and self.iter == 3:
                raise CancelFitException()

        def after_fit(self):
            self.model_at_end = self.model

    stop = StopAt3()
    stop.seen = []
    learn = Learner(make_mlp(), make_dls(), lr=0.1, cbs=[stop], progress=False)
    learn.fit(3)
    assert stop.seen == [0, 1, 2, 3]
    assert stop.model_at_end is learn.model
    assert learn.history == []


def test_order_then_insertion():
    calls = []

    def make(tag, order):
        cb = type(f"C{tag}", (Callback,), {"order": order, "before_fit": lambda self: calls.append(tag)})()
        return cb

    tiny_learner([make("late", 5), make("a", -1), make("b", -1)]).fit(1)
    assert calls == ["a", "b", "late"]


def test_fit_cbs_are_removed_after_the_fit_and_dispatch_follows():
    learn = tiny_learner()
    log = EventLog()
    learn.fit(1, cbs=[log])
    n_events = len(log.events)
    assert log not in learn.cbs and not hasattr(learn, "event_log")
    learn.fit(1)
    assert len(log.events) == n_events
    learn.fit(1, cbs=[log])
    assert len(log.events) == 2 * n_events


def test_fit_cbs_are_removed_even_when_the_fit_raises():
    class Boom(Callback):
        def before_train(self):
            raise RuntimeError("boom")

    learn, boom = tiny_learner(), Boom()
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=[boom])
    assert boom not in learn.cbs


def test_callback_error_names_the_callback_and_runs_after_fit():
    class Broken(Callback):
        def after_loss(self):
            raise ValueError("bad callback")

    log, broken = EventLog(), Broken()
    learn = tiny_learner([broken, log])
    with pytest.raises(ValueError, match="bad callback") as info:
        learn.fit(1)
    assert log.events[-1] == "after_fit"
    assert "raised in callback Broken.after_loss" in info.value.__notes__
    learn.remove_cbs([broken])
    learn.fit(1)  # the learner is still usable
    assert torch.isfinite(learn.model.weight).all()


def test_default_callbacks_are_visible_and_replaceable():
    from learnloop.callbacks import GracefulInterrupt, ProgressCallback, Recorder, TerminateOnNaN, default_callbacks

    defaults = [Recorder, TerminateOnNaN, GracefulInterrupt]
    assert [type(cb) for cb in tiny_learner().cbs] == [type(cb) for cb in default_callbacks(progress=False)] == defaults
    assert [type(cb) for cb in default_callbacks()] == [*defaults, ProgressCallback]
    bare = tiny_learner(default_cbs=[])
    before = bare.model.weight.detach().clone()
    bare.fit(2)  # the bare loop trains, and records nothing
    assert bare.cbs == [] and bare.history == [] and not torch.equal(before, bare.model.weight)
    results = bare.validate()  # with a Recorder of its own, for that call
    assert results["loss"] > 0 and bare.cbs == []
    log = EventLog()
    assert [type(cb) for cb in tiny_learner([log], default_cbs=[Recorder()]).cbs] == [Recorder, EventLog]


def test_misspelled_event_warns():
    class Typo(Callback):
        def befor_fit(self):
            pass

    with pytest.warns(UserWarning, match="befor_fit.*before_fit"):
        tiny_learner([Typo()])


def test_shadowing_a_learner_attribute_warns_and_delegation_reads_it():
    class Shadow(Callback):
        def before_fit(self):
            assert self.n_epoch == 2 and self.model is self.learn.model
            self.loss = 1.0

    with pytest.warns(UserWarning, match="self.learn.loss"):
        tiny_learner([Shadow()]).fit(2)


def test_callback_without_super_init_and_named_attribute():
    class MyThing(Callback):
        def __init__(self, k):
            self.k = k

    learn = tiny_learner([MyThing(3)])
    assert learn.my_thing.k == 3


@pytest.mark.parametrize("n_epoch", [0, -1, 1.5])
def test_bad_n_epoch(n_epoch):
    with pytest.raises(ValueError, match="positive int"):
        tiny_learner().fit(n_epoch)


def test_validation_has_no_grad_and_eval_mode():
    class Check(Callback):
        def after_pred(self):
            assert self.model.training == self.training
            assert self.preds.requires_grad == self.training

    tiny_learner([Check()]).fit(1)


def test_recorder_means_are_weighted_by_batch_size():
    torch.manual_seed(0)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    dls = type("DLs", (), {"train": DataLoader(TensorDataset(x, y), batch_size=4),
                           "valid": DataLoader(TensorDataset(x, y), batch_size=4)})()  # fmt: skip
    learn = Learner(torch.nn.Linear(3, 2), dls, lr=0.0, metrics=[accuracy], progress=False)
    learn.fit(1)
    with torch.no_grad():
        expected_loss = float(torch.nn.functional.cross_entropy(learn.model(x), y))
        expected_acc = float(accuracy(learn.model(x), y))
    row = learn.history[0]
    assert row["train_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert row["valid_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert row["valid_accuracy"] == pytest.approx(expected_acc, rel=1e-6)
    assert len(learn.recorder.losses) == 3 and learn.recorder.lrs == [0.0] * 3
    per_batch_mean = sum(learn.recorder.losses) / 3
    assert per_batch_mean != pytest.approx(expected_loss, rel=1e-6)  # 4, 4, 2: unweighted differs


def test_history_keys_and_validate_equals_last_row(make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, metrics=[accuracy], progress=False)
    learn.fit(2)
    assert [r["epoch"] for r in learn.history] == [0, 1]
    assert set(learn.history[-1]) == {"epoch", "train_loss", "valid_loss", "valid_accuracy", "lr", "time"}
    results = learn.validate()
    assert results["loss"] == pytest.approx(learn.history[-1]["valid_loss"], rel=1e-5)
    assert results["accuracy"] == pytest.approx(learn.history[-1]["valid_accuracy"], rel=1e-6)


def test_get_preds_and_predict(make_dls, make_mlp, digits_tensors):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, metrics=[accuracy], progress=False)
    learn.fit(3)
    preds, targets = learn.get_preds()
    _, _, xv, yv = digits_tensors
    assert preds.shape == (len(yv), 10) and torch.equal(targets, yv)
    assert float(accuracy(preds, targets)) > 0.85
    label, index, probs = learn.predict(xv[0])  # no vocab: the label is the index
    assert label == index == int(preds[0].argmax()) and torch.allclose(probs, preds[0].softmax(-1), atol=1e-6)


def test_single_training_loader_runs_without_validation(digits_tensors, make_mlp):
    xt, yt, _, _ = digits_tensors
    log = EventLog()
    learn = Learner(make_mlp(), DataLoader(TensorDataset(xt, yt), batch_size=64), lr=0.1, cbs=[log], progress=False)
    learn.fit(2)
    assert "before_validate" not in log.events
    assert learn.history[1]["train_loss"] < learn.history[0]["train_loss"]
    assert "valid_loss" not in learn.history[0]
    with pytest.raises(ValueError, match="no valid loader"):
        learn.validate()


def test_torch_model_torch_optimizer_and_torch_loaders_train(make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), loss_func=torch.nn.CrossEntropyLoss(), opt_func=torch.optim.Adam,
                    lr=1e-2, metrics=[accuracy], progress=False)  # fmt: skip
    learn.fit(3)
    assert learn.history[-1]["valid_accuracy"] > 0.9
    assert learn.history[-1]["train_loss"] < learn.history[0]["train_loss"]


@pytest.mark.parametrize("pair", [tuple, list])
def test_a_train_valid_pair_is_taken_as_the_two_loaders(make_dls, make_mlp, pair):
    dls = make_dls()
    learn = Learner(make_mlp(), pair([dls.train, dls.valid]), lr=0.1, metrics=[accuracy], progress=False)
    assert learn.dls.train is dls.train and learn.dls.valid is dls.valid
    learn.fit(3)
    assert learn.history[-1]["valid_accuracy"] > 0.85
    assert Learner(make_mlp(), (dls.train, None), progress=False).dls.valid is None
    batches = [next(iter(dls.train)), next(iter(dls.valid))]  # a list of two (xb, yb) batches is one loader
    assert Learner(make_mlp(), batches, progress=False).dls.train is batches


def test_lr_property_and_fit_lr(make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, progress=False)
    assert learn.lr == 0.1
    learn.fit(1, lr=0.05)
    assert learn.lr == 0.05 and learn.history[0]["lr"] == 0.05


def test_metric_that_raises_names_itself_and_non_scalar_metric(make_dls, make_mlp):
    def broken_metric(preds, targets):
        raise KeyError("oops")

    def per_sample(preds, targets):
        return preds.argmax(1) == targets

    with pytest.raises(RuntimeError, match="broken_metric"):
        Learner(make_mlp(), make_dls(), metrics=[broken_metric], progress=False).fit(1)
    with pytest.raises(ValueError, match="per_sample.*one number"):
        Learner(make_mlp(), make_dls(), metrics=[per_sample], progress=False).fit(1)


def test_save_and_load_round_trip(tmp_path, make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, opt_func=torch.optim.Adam, progress=False)
    learn.fit(1)
    path = learn.save(tmp_path / "model.pt")
    other = Learner(make_mlp(seed=1), make_dls(), lr=0.1, opt_func=torch.optim.Adam, progress=False)
    other.load(path)
    for a, b in zip(learn.model.parameters(), other.model.parameters()):
        assert torch.equal(a, b)
    assert other.opt.state_dict()["state"].keys() == learn.opt.state_dict()["state"].keys()
    assert torch.load(path, weights_only=True)["model"].keys() == learn.model.state_dict().keys()


def test_real_learning_on_digits_with_default_loss_and_sgd(make_dls):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(1024, 10)
    )
    learn = Learner(model, make_dls(bs=32), lr=0.1, metrics=[accuracy], progress=False)
    learn.fit(5)
    assert learn.history[-1]["valid_accuracy"] >= 0.93


def test_top_level_exports():
    for name in ["Learner", "Callback", "CancelBatchException", "CancelTrainException",
                 "CancelValidateException", "CancelEpochException", "CancelFitException"]:  # fmt: skip
        assert hasattr(learnloop, name)


def test_progress_prints_one_row_per_epoch(make_dls, make_mlp, capsys):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, metrics=[accuracy])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.fit(2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "valid_accuracy", "time"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1"]


def test_keras_style_fit_on_numpy_arrays(digits_tensors, make_mlp):
    xt, yt, xv, yv = (t.numpy() for t in digits_tensors)
    seen = []

    class Logger:
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    learn = learnloop.fit(make_mlp(), xt, yt, epochs=5, batch_size=32, validation_data=(xv, yv),
                          callbacks=[Logger()], lr=0.1, metrics=[accuracy], progress=False)  # fmt: skip
    assert [e for e, _ in seen] == [0, 1, 2, 3, 4]
    assert seen[0][1] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert learn.history[-1]["valid_accuracy"] > 0.9


def test_keras_style_fit_without_validation(digits_tensors, make_mlp):
    xt, yt, _, _ = digits_tensors
    learn = learnloop.fit(make_mlp(), xt, yt, epochs=2, lr=0.1, progress=False)
    assert learn.dls.valid is None and learn.history[1]["train_loss"] < learn.history[0]["train_loss"]


def test_simple_cnn_on_digits_with_learnloops_own_pieces_reaches_93_percent():
    from learnloop.data import DataLoaders, Normalize
    from learnloop.data.datasets import digits
    from learnloop.nn import simple_cnn

    train_ds, valid_ds = digits()
    norm = Normalize.from_batch(train_ds.x)
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=32, seed=0, batch_tfms=[norm])
    torch.manual_seed(0)
    model = simple_cnn(in_channels=1, n_classes=10, widths=(16, 32, 64))
    learn = Learner(model, dls, lr=0.1, metrics=[accuracy], progress=False)
    learn.fit(10)
    assert max(row["valid_accuracy"] for row in learn.history) >= 0.93
    assert learn.history[-1]["train_loss"] < learn.history[0]["train_loss"] / 3


# -- issue 14: one progress state, one hp record, typo-proof events, the error path, validation via the loop --
class Progress(Callback):
    """Records the learner's progress state at every training batch."""

    def __init__(self):
        self.seen = []

    def before_batch(self):
        if self.training:
            self.seen.append((self.epoch, self.iter, self.train_iter, self.pct_train))


def test_one_progress_state_counts_training_batches_across_epochs():
    progress = Progress()
    learn = tiny_learner([progress])  # 2 training batches an epoch
    learn.fit(3)
    assert [s[:3] for s in progress.seen] == [(e, i, 2 * e + i) for e in range(3) for i in range(2)]
    assert [s[3] for s in progress.seen] == [k / 6 for k in range(6)]
    assert (learn.train_iter, learn.n_train_iter, learn.pct_train) == (6, 6, 1.0)


def test_hp_record_is_written_through_set_hp_and_read_back_from_torch_schedulers():
    from functools import partial

    from torch.optim.lr_scheduler import StepLR

    from learnloop.callbacks import TorchScheduler

    learn = tiny_learner(opt_func=partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-4))
    assert learn.hps == {"lr": [0.1], "momentum": [0.9], "wd": [1e-4]}
    learn.set_hp("momentum", 0.8)
    assert learn.opt.param_groups[0]["momentum"] == 0.8 and learn.hps["momentum"] == [0.8]
    learn.fit(3, cbs=[TorchScheduler(partial(StepLR, step_size=1, gamma=0.5))])
    assert learn.recorder.lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])  # per batch, from learn.hps
    assert learn.hps["lr"] == [learn.opt.param_groups[0]["lr"]] == [pytest.approx(0.0125)]
    with pytest.raises(KeyError, match="no hyper-parameter 'betas2'"):
        learn.set_hp("betas2", 0.1)


@pytest.mark.parametrize("method, meant", [
    ("on_epoch_end", "after_epoch"), ("on_train_begin", "before_fit"), ("on_batch_end", "after_batch"),
    ("befor_fit", "before_fit"), ("after_epok", "after_epoch"),
])  # fmt: skip
def test_keras_names_and_near_misses_on_a_callback_warn_naming_the_event(method, meant):
    cls = type("Mine", (Callback,), {method: lambda self, *args: None})
    with pytest.warns(UserWarning, match=f"Mine.{method} is not an event.*did you mean '{meant}'") as caught:
        tiny_learner([cls()])
    if method.startswith("on_"):
        assert "keras.callbacks.Callback" in str(caught[0].message)


class SeesError(Callback):
    """Records `learn.error` in every after_cancel_* and after_fit."""

    def __init__(self):
        self.seen = []

    def after_fit(self):
        self.seen.append(("after_fit", self.learn.error))

    def after_cancel_fit(self):
        self.seen.append(("after_cancel_fit", self.learn.error))

    def after_cancel_batch(self):
        self.seen.append(("after_cancel_batch", self.learn.error))


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_after_fit_is_handed_the_error_that_ends_the_fit(exc):
    sees = SeesError()
    learn = tiny_learner([sees, EventLog({"before_batch": exc})])
    with pytest.raises(exc):
        learn.fit(1)
    assert [name for name, _ in sees.seen] == ["after_fit"] and isinstance(sees.seen[0][1], exc)
    assert learn.error is None


def test_cancels_are_handed_to_their_after_cancel_event_only():
    sees = SeesError()
    tiny_learner([sees, EventLog({"after_loss": CancelBatchException})]).fit(1)
    cancelled = [e for name, e in sees.seen if name == "after_cancel_batch"]
    assert len(cancelled) == 3 and all(isinstance(e, CancelBatchException) for e in cancelled)
    assert sees.seen[-1] == ("after_fit", None)
    sees.seen.clear()
    tiny_learner([sees, EventLog({"after_epoch": CancelFitException})]).fit(2)
    assert [n for n, _ in sees.seen] == ["after_cancel_fit", "after_fit"] and sees.seen[1][1] is None
    assert isinstance(sees.seen[0][1], CancelFitException)


def test_validate_and_get_preds_run_the_loops_validation_phase_with_their_cbs(make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(bs=64), lr=0.1, metrics=[accuracy], progress=False)
    learn.fit(1)
    log = EventLog()
    results = learn.validate(cbs=[log])
    n = len(learn.dls.valid)
    assert log.events == ["before_validate", *VALID_BATCH * n, "after_validate"]
    assert log not in learn.cbs
    log = EventLog()
    preds, targets = learn.get_preds(cbs=[log])
    assert log.events == ["before_validate", *VALID_BATCH * n, "after_validate"] and log not in learn.cbs
    assert results["accuracy"] == pytest.approx(accuracy(preds, targets).item())
    assert results["loss"] == pytest.approx(learn.history[-1]["valid_loss"])
    assert torch.equal(targets, torch.cat([yb for _, yb in learn.dls.valid]))


def test_remove_cbs_returns_a_function_that_puts_them_back_in_their_places():
    a, b, c = EventLog(), EventLog(), EventLog()
    learn = tiny_learner([a, b, c])
    before = list(learn.cbs)
    put_back = learn.remove_cbs([c, a])
    assert a not in learn.cbs and c not in learn.cbs
    learn.fit(1)
    assert a.events == [] and b.events
    put_back()
    assert learn.cbs == before and learn.event_log is c  # the last one added under a name owns it, as before
