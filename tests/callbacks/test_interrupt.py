"""GracefulInterrupt from Python: SIGINT/SIGTERM during `Learner.fit` stop after the batch, checkpoint there
and raise FitInterrupted; a resume ends bit for bit where the uninterrupted fit ends; a second signal aborts."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import torch

from learnloop import Callback, FitInterrupted, Learner, load_checkpoint
from learnloop.callbacks import Checkpoint
from learnloop.callbacks.interrupt import SignalLatch
from learnloop.data import ArrayDataset, DataLoader, DataLoaders


class Signal(Callback):
    """Sends `signals` to this process after the forward of global training (or validation) batch `at`."""

    def __init__(self, at: int, *signals: int, valid: bool = False):
        self.at, self.signals, self.valid = at, signals, valid
        self.steps = 0

    def after_pred(self):
        at = self.epoch * self.n_iter + self.iter
        if self.training != self.valid and at == self.at:
            for signum in self.signals:
                os.kill(os.getpid(), signum)  # the handler runs at once, in this thread

    def after_step(self):
        self.steps += 1


@pytest.fixture(autouse=True)
def sigint_as_in_a_terminal():
    """Ctrl-C raises KeyboardInterrupt here even when pytest was started with SIGINT ignored (a job run with `&`),
    which learnloop would rightly leave ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def learner(digits_tensors, make_mlp):
    def make() -> Learner:
        xt, yt, xv, yv = digits_tensors
        dls = DataLoaders(DataLoader(ArrayDataset(xt[:256], yt[:256]), 32, shuffle=True, seed=0),
                          DataLoader(ArrayDataset(xv[:64], yv[:64]), 64))  # fmt: skip
        return Learner(make_mlp(0), dls, lr=0.1, progress=False)

    return make


def _weights(learn: Learner) -> dict[str, torch.Tensor]:
    return learn.model.state_dict()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_batch_checkpoints_there_and_resume_is_exact(learner, tmp_path, signum):
    expected = learner()
    expected.fit_one_cycle(2, 0.1)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    path = tmp_path / "last.ckpt"
    stopped = learner()
    with pytest.raises(FitInterrupted) as info:
        stopped.fit_one_cycle(2, 0.1, cbs=[Checkpoint(path), Signal(10, signum)])  # batch 2 of epoch 1
    e = info.value
    assert isinstance(e, KeyboardInterrupt) and e.signum == signum
    assert e.position == e.saved_at == (1, 3) and e.checkpoint == path and e.n_batches == 8
    assert str(e) == f"{signal.Signals(signum).name} stopped the fit at epoch 1, batch 3/8; saved {path}."
    state = load_checkpoint(path)
    assert (state["epoch"], state["iter"]) == (1, 3)
    assert all(torch.equal(state["model"][k], v) for k, v in _weights(stopped).items())  # after batch 2's step
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    resumed = learner()
    resumed.fit_one_cycle(2, 0.1, cbs=[Checkpoint(path)], resume=path)
    assert all(torch.equal(v, _weights(expected)[k]) for k, v in _weights(resumed).items())
    assert resumed.recorder.losses == expected.recorder.losses
    assert [r["valid_loss"] for r in resumed.history] == [r["valid_loss"] for r in expected.history]


def test_without_a_checkpoint_callback_it_stops_and_says_nothing_was_saved(learner):
    learn = learner()
    with pytest.raises(FitInterrupted, match=r"SIGINT stopped the fit at epoch 0, batch 5/8; nothing was saved"):
        learn.fit(2, cbs=[Signal(4, signal.SIGINT)])
    assert learn.history == []


def test_a_signal_during_validation_stops_at_the_end_of_the_epoch(learner, tmp_path):
    learn = learner()
    with pytest.raises(FitInterrupted) as info:
        learn.fit(3, cbs=[Checkpoint(tmp_path / "c.ckpt", every_n_epochs=None), Signal(0, signal.SIGTERM, valid=True)])
    assert info.value.position == info.value.saved_at == (1, 0) and len(learn.history) == 1
    assert load_checkpoint(tmp_path / "c.ckpt")["epoch"] == 1


def test_a_second_signal_aborts_at_once(learner, tmp_path):
    learn = learner()
    sender = Signal(3, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info, pytest.warns(RuntimeWarning, match="is kept"):
        learn.fit(1, cbs=[Checkpoint(tmp_path / "c.ckpt", every_n_batches=2), sender])
    assert type(info.value) is KeyboardInterrupt  # not a clean stop: raised in the middle of batch 3
    assert sender.steps == 3  # batch 3 never stepped
    assert load_checkpoint(tmp_path / "c.ckpt")["iter"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored: Python's own


def test_a_loader_that_cannot_resume_mid_epoch_keeps_the_epoch_checkpoint(make_dls, make_mlp, tmp_path):
    learn = Learner(make_mlp(0), make_dls(bs=64), lr=0.1, progress=False)  # torch DataLoaders
    n = len(learn.dls.train)
    with pytest.raises(FitInterrupted) as info, pytest.warns(RuntimeWarning, match="is kept"):
        learn.fit(2, cbs=[Checkpoint(tmp_path / "c.ckpt"), Signal(n + 2, signal.SIGTERM)])
    assert info.value.position == (1, 3) and info.value.saved_at == (1, 0)
    assert "(epoch 1, batch 0) is the last checkpoint: its train loader can't resume mid-epoch" in str(info.value)


def test_handlers_are_left_alone_outside_the_main_thread(learner):
    seen, before = [], signal.getsignal(signal.SIGTERM)

    class Look(Callback):
        def before_batch(self):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=lambda: learner().fit(1, cbs=[Look()]))
    thread.start()
    thread.join()
    assert seen and all(handler == before for handler in seen)


def test_a_signal_latch_holds_the_first_signal_and_lets_a_second_abort():
    before = signal.getsignal(signal.SIGTERM)
    with SignalLatch(then="finishing") as latch:
        os.kill(os.getpid(), signal.SIGTERM)  # noted, not acted on: this process is still here
        assert latch.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before and signal.getsignal(signal.SIGINT) is signal.default_int_handler
