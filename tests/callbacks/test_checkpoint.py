"""Checkpoint and exact resume: the kill test, atomic writes, safe loading, interrupts, property tests."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

import learnloop
from learnloop import Callback, Learner, load_checkpoint
from learnloop.callbacks import Checkpoint, CSVLogger
from learnloop.rng import rng_state, set_rng_state
from learnloop.data import ArrayDataset, DataLoader, DataLoaders
from learnloop.errors import CheckpointError
from learnloop.metrics import accuracy
from learnloop.optim import SGD
from learnloop.saving import atomic_save

SCRIPT = Path(__file__).parents[1] / "resume_script.py"


def _run_script(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(learnloop.__file__).parents[1])}
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, stderr=subprocess.PIPE, text=True)


def _wait(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -9), err
    return proc.returncode


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    # The uninterrupted and the killed run go side by side; the killed one dies half-way through batch 33
    # (epoch 1 of 2, 23 batches each), after checkpoints at batches 5, 10, ..., 30 and one at the epoch end.
    full = _run_script(str(tmp_path / "full.ckpt"), str(tmp_path / "full.pt"))
    killed = _run_script(str(tmp_path / "k.ckpt"), str(tmp_path / "k.pt"), "--kill-at", "33")
    assert _wait(killed) == -9 and not (tmp_path / "k.pt").exists()
    assert _wait(full) == 0
    ckpt = load_checkpoint(tmp_path / "k.ckpt")
    assert (ckpt["epoch"], ckpt["iter"]) == (1, 7)  # batch 30 of the fit = batch 7 of epoch 1, next to run
    assert _wait(_run_script(str(tmp_path / "k.ckpt"), str(tmp_path / "k.pt"), "--resume")) == 0
    expected, resumed = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "k.pt")
    assert _same_weights(expected["model"], resumed["model"])
    assert resumed["history"] == expected["history"]  # the resumed epoch's means, bit for bit
    assert resumed["losses"] == expected["losses"]
    assert not list(tmp_path.glob(".*.tmp"))


# -- in-process helpers ------------------------------------------------------------------------
def _learner(digits_tensors, bs: int = 32, n: int = 128, **kwargs) -> Learner:
    xt, yt, xv, yv = digits_tensors
    torch.manual_seed(0)
    dls = DataLoaders(DataLoader(ArrayDataset(xt[:n], yt[:n]), bs, shuffle=True),
                      DataLoader(ArrayDataset(xv[:64], yv[:64]), 64))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                                torch.nn.Dropout(0.1), torch.nn.Linear(16, 10))
    return Learner(model, dls, opt_func=partial(SGD, momentum=0.9), metrics=[accuracy], progress=False, **kwargs)


class StopAt(Callback):
    """Raises `exc` at `event` of global training batch `at`."""

    def __init__(self, at: int, exc: type[BaseException] = KeyboardInterrupt, event: str = "before_batch",
                 order: int = 0):
        self.at, self.exc, self.event, self.order = at, exc, event, order

    def _maybe_raise(self, event: str):
        if event == self.event and self.training and self.epoch * self.n_iter + self.iter == self.at:
            raise self.exc("stop")

    def before_batch(self):
        self._maybe_raise("before_batch")

    def after_pred(self):
        self._maybe_raise("after_pred")

    def after_batch(self):
        self._maybe_raise("after_batch")


def _rows(learn: Learner) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in learn.history]


def _fit(learn: Learner, ckpt: Path | None = None, resume: Path | None = None, n_epoch: int = 2, **ckpt_kwargs) -> None:
    cbs = [Checkpoint(ckpt, **ckpt_kwargs)] if ckpt else []
    learn.fit_one_cycle(n_epoch, 0.1, cbs=cbs, resume=resume)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bs=st.integers(16, 64), stop=st.integers(0, 23), every=st.integers(1, 7),
       exc=st.sampled_from([KeyboardInterrupt, RuntimeError]), between_batches=st.booleans())
def test_resume_after_a_stop_anywhere_equals_the_uninterrupted_fit(digits_tensors, bs, stop, every, exc,
                                                                    between_batches):
    expected = _learner(digits_tensors, bs)
    _fit(expected)
    n_batches = 2 * len(expected.dls.train)
    stop = stop % n_batches
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.ckpt"
        learn = _learner(digits_tensors, bs)
        # after_batch at order 95 stops between batches (a last checkpoint is written there); before_batch
        # stops inside one (the last periodic checkpoint is used)
        event, order = ("after_batch", 95) if between_batches else ("before_batch", 0)
        learn.add_cbs([StopAt(stop, exc, event, order)])
        with pytest.raises(exc), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _fit(learn, path, every_n_batches=every)
        resumed = _learner(digits_tensors, bs)
        _fit(resumed, path, resume=path if path.exists() else None, every_n_batches=every)
    assert _same_weights(expected.model.state_dict(), resumed.model.state_dict())
    assert _rows(resumed) == _rows(expected)
    assert resumed.recorder.losses == expected.recorder.losses


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(tmp_path, digits_tensors):
    learn = _learner(digits_tensors)
    _fit(learn, tmp_path / "c.ckpt", n_epoch=1, every_n_batches=2)
    state = torch.load(tmp_path / "c.ckpt", weights_only=True)
    assert set(state) >= {"model", "opt", "cbs", "epoch", "iter", "history", "rng", "loader", "version"}
    assert (state["epoch"], state["iter"]) == (1, 0)
    assert "recorder" in state["cbs"] and not {"one_cycle", "terminate_on_na_n"} & set(state["cbs"])  # stateless
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python", "loader"}
    assert _same_weights(state["model"], learn.model.state_dict())


def test_rng_state_round_trip(digits_tensors):
    import random

    import numpy as np

    learn = _learner(digits_tensors)
    state = rng_state(learn)
    first = torch.rand(3), np.random.rand(3), random.random()
    set_rng_state(learn, state)
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(first[0], again[0]) and (first[1] == again[1]).all() and first[2] == again[2]


def test_crash_while_writing_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, digits_tensors, monkeypatch):
    path = tmp_path / "last.ckpt"
    learn = _learner(digits_tensors)
    _fit(learn, path, n_epoch=1)
    before = load_checkpoint(path)

    def torch_save_that_dies(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(torch, "save", torch_save_that_dies)
    with pytest.raises(OSError, match="injected"):
        _bound_checkpoint(learn, path).save(1, 0)
    monkeypatch.undo()
    assert _same_weights(load_checkpoint(path)["model"], before["model"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def _bound_checkpoint(learn: Learner, path: Path) -> Checkpoint:
    cb = Checkpoint(path)
    cb.learn = learn
    return cb


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))  # unpickling would create the marker file


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, digits_tensors):
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"model": {}, "payload": _Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match="Refused to load"):
        load_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError, match="Refused to load"):
        _learner(digits_tensors).fit(1, resume=path)
    assert not marker.exists()


def test_keyboard_interrupt_runs_cleanup_writes_a_last_checkpoint_and_reraises(tmp_path, digits_tensors):
    path, csv = tmp_path / "last.ckpt", tmp_path / "history.csv"
    learn = _learner(digits_tensors)
    learn.dls.train.n_workers, learn.dls.train.mp_context = 2, multiprocessing.get_context("fork")
    logger = CSVLogger(csv)
    n_iter = len(learn.dls.train)
    with pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(2, 0.1, cbs=[logger, Checkpoint(path), StopAt(n_iter + 2, event="after_batch", order=95)])
    assert logger.file is None  # after_fit closed the logger
    state = load_checkpoint(path)
    assert (state["epoch"], state["iter"]) == (1, 3)  # between batches 2 and 3 of epoch 1: a last checkpoint
    assert _same_weights(state["model"], learn.model.state_dict())
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()  # the worker pool is shut down


def test_interrupt_mid_batch_keeps_the_last_checkpoint_with_a_warning(tmp_path, digits_tensors):
    path = tmp_path / "last.ckpt"
    learn = _learner(digits_tensors)
    with pytest.raises(KeyboardInterrupt), pytest.warns(RuntimeWarning, match="is kept: resume from it"):
        learn.fit_one_cycle(1, 0.1, cbs=[Checkpoint(path, every_n_batches=2), StopAt(3, event="after_pred")])
    assert (load_checkpoint(path)["epoch"], load_checkpoint(path)["iter"]) == (0, 2)


def test_nan_loss_stops_and_checkpoints_hold_finite_weights(tmp_path, digits_tensors):
    path = tmp_path / "last.ckpt"
    # squared error grows with the weights, so at lr=1e6 the loss overflows within a few batches
    learn = _learner(digits_tensors, bs=8, loss_func=lambda p, y: ((p - F.one_hot(y, 10)) ** 2).mean())
    with pytest.warns(RuntimeWarning, match=r"training loss is (nan|inf) at epoch 0, batch \d+, lr 1e\+06"):
        learn.fit(2, lr=1e6, cbs=[Checkpoint(path, every_n_batches=1)])
    stopped_at = learn.iter
    assert learn.epoch == 0 and stopped_at < len(learn.dls.train) - 1 and not learn.history
    state = load_checkpoint(path)
    assert state["iter"] == stopped_at  # the last batch stepped; nothing from the non-finite one
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_checkpoint_skips_non_finite_weights_with_a_warning(tmp_path, digits_tensors):
    learn = _learner(digits_tensors)
    with torch.no_grad():
        next(learn.model.parameters())[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="not finite"):
        assert _bound_checkpoint(learn, tmp_path / "c.ckpt").save(0, 0) is None
    assert not (tmp_path / "c.ckpt").exists()


def test_resuming_a_finished_fit_says_so_and_trains_nothing(tmp_path, digits_tensors):
    path = tmp_path / "last.ckpt"
    done = _learner(digits_tensors)
    _fit(done, path)
    again = _learner(digits_tensors)
    with pytest.warns(UserWarning, match="already finished"):
        _fit(again, path, resume=path)
    assert _same_weights(again.model.state_dict(), done.model.state_dict()) and _rows(again) == _rows(done)


def test_torch_dataloader_resumes_exactly_at_epoch_ends_and_refuses_batch_checkpoints(tmp_path, make_dls, make_mlp):
    def learner():
        return Learner(make_mlp(0), make_dls(bs=64, seed=1), lr=0.1, progress=False)

    expected = learner()
    expected.fit(2)
    path = tmp_path / "last.ckpt"
    first = learner()
    with pytest.raises(KeyboardInterrupt), pytest.warns(RuntimeWarning, match=r"epoch 1, batch 0\) is kept"):
        first.fit(2, cbs=[Checkpoint(path), StopAt(len(first.dls.train) + 1)])
    assert load_checkpoint(path)["epoch"] == 1 and load_checkpoint(path)["loader"] is None
    resumed = learner()
    resumed.fit(2, cbs=[Checkpoint(path)], resume=path)
    assert _same_weights(resumed.model.state_dict(), expected.model.state_dict())
    with pytest.raises(ValueError, match="no state_dict/load_state_dict.*every_n_batches=None"):
        learner().fit(1, cbs=[Checkpoint(path, every_n_batches=3)])


def test_resume_errors_name_the_problem(tmp_path, digits_tensors):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        _learner(digits_tensors).fit(1, resume=tmp_path / "missing.ckpt")
    learn = _learner(digits_tensors)
    learn.save(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="not a learnloop training checkpoint"):
        learn.fit(1, resume=tmp_path / "model.pt")
    with pytest.raises(ValueError, match="every_n_batches must be a positive int"):
        Checkpoint(tmp_path / "c.ckpt", every_n_batches=0)


# -- what a checkpoint was made with -------------------------------------------------------------
def test_checkpoint_meta_is_saved_and_a_resume_with_other_meta_is_refused(tmp_path, digits_tensors):
    path = tmp_path / "last.ckpt"
    _learner(digits_tensors).fit(1, cbs=[Checkpoint(path, meta={"data": "digits", "width": 16})])
    meta = load_checkpoint(path)["meta"]
    assert meta == {"learnloop": meta["learnloop"], "torch": str(torch.__version__), "data": "digits", "width": 16}
    with pytest.raises(CheckpointError, match=r"written by a run with width=16, but this run has width=32: it can't"):
        _learner(digits_tensors).fit(2, cbs=[Checkpoint(path, meta={"data": "digits", "width": 32})], resume=path)
    state = load_checkpoint(path)
    state["meta"]["learnloop"] = "0.0.1"
    atomic_save(state, path)
    resumed = _learner(digits_tensors)
    with pytest.warns(UserWarning) as seen:
        resumed.fit(2, cbs=[Checkpoint(path, meta={"data": "digits", "width": 16})], resume=path)
    said = [str(w.message) for w in seen]
    assert any("written with learnloop='0.0.1', this run uses learnloop=" in m for m in said)
    assert any("comes from a fit of 1 epochs, this one has 2" in m for m in said) and len(resumed.history) == 2


def test_checkpoint_meta_takes_plain_values_only(tmp_path):
    with pytest.raises(ValueError, match=r"str, int, float, bool or None.*'path': PosixPath"):
        Checkpoint(tmp_path / "c.ckpt", meta={"path": tmp_path})


def test_weights_of_another_model_are_named_not_dumped(tmp_path, digits_tensors, make_mlp):
    path = tmp_path / "last.ckpt"
    _learner(digits_tensors).fit(1, cbs=[Checkpoint(path)])
    dls = _learner(digits_tensors).dls
    other = Learner(make_mlp(0), dls, progress=False)  # layers 1 and 3, where the checkpoint has 1 and 4
    with pytest.raises(CheckpointError, match=r"holds the weights of another model: 2 of this model's tensors are "
                                              r"missing \(e.g. \['3.bias', '3.weight'\]\), 2 are unknown to it"):
        other.fit(1, resume=path)
    wider = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(32, 10))  # the same names, other shapes
    with pytest.raises(CheckpointError, match=r"another model: 1.weight has shape \(16, 64\) there and \(32, 64\) "
                                              r"here \(3 tensors differ\)"):
        Learner(wider, dls, progress=False).fit(1, resume=path)
