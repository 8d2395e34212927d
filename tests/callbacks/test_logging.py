"""TensorBoard and CSV loggers, read back with TensorBoard's own reader, a real server, and csv."""

from __future__ import annotations

import csv
import json
import math
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from learnloop import CancelFitException, Callback, Learner
from learnloop.callbacks import CSVLogger, TensorBoardCallback, monitoring_callbacks
from learnloop.metrics import accuracy


def read_events(log_dir: Path) -> EventAccumulator:
    """Everything in `log_dir`'s event files (no sampling: size_guidance 0 keeps all values)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    return acc.Reload()


def scalar_values(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


class CountBatches(Callback):
    def __init__(self):
        self.n = 0

    def before_batch(self):
        self.n += 1


class StopAt(Callback):
    """Raises `exc` at training batch `iter` of epoch `epoch`; keeps a reference to the TB writer."""

    def __init__(self, epoch: int, iter: int, exc: BaseException):
        self.at, self.exc, self.seen_writer = (epoch, iter), exc, None

    def before_batch(self):
        self.seen_writer = self.seen_writer or self.learn.tensor_board.writer
        if self.training and (self.epoch, self.iter) == self.at:
            raise self.exc


def fit(make_dls, cbs, n_epoch=2, metrics=(accuracy,), bs=64):
    learn = Learner(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), make_dls(bs), lr=0.2,
                    metrics=list(metrics), cbs=cbs, progress=False)  # fmt: skip
    learn.fit(n_epoch)
    return learn


def test_tensorboard_scalars_equal_history(tmp_path, make_dls):
    tb = TensorBoardCallback(tmp_path / "tb", every_n_batches=5, log_hist=True, log_graph=True, hparams={"wd": 0.0})
    learn = fit(make_dls, [tb], n_epoch=3)
    assert tb.writer is None  # closed by after_fit

    acc = read_events(tmp_path / "tb")
    tags = acc.Tags()
    assert {"train/loss", "valid/loss", "valid/accuracy", "lr", "train/batch_loss"} <= set(tags["scalars"])
    for key, tag in [("valid_loss", "valid/loss"), ("train_loss", "train/loss"), ("valid_accuracy", "valid/accuracy")]:
        values = scalar_values(acc, tag)
        assert [step for step, _ in values] == [0, 1, 2]  # global step = epoch, one value per epoch
        assert [v for _, v in values] == pytest.approx([row[key] for row in learn.history], rel=1e-6)
    n_iter = len(learn.dls.train)
    batch_steps = [step for step, _ in scalar_values(acc, "train/batch_loss")]
    assert batch_steps == [e * n_iter + i for e in range(3) for i in range(0, n_iter, 5)]
    assert {"weights/1.weight", "grads/1.weight", "grads/1.bias"} <= set(tags["histograms"])
    assert tags["graph"]
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"n_epoch" in hparams["_hparams_/experiment"] and b"wd" in hparams["_hparams_/experiment"]


@pytest.mark.parametrize("exc", [CancelFitException(), RuntimeError("boom")], ids=["cancelled", "raised"])
def test_fit_stopped_in_epoch_2_leaves_closed_readable_events(tmp_path, make_dls, exc):
    tb, stop = TensorBoardCallback(tmp_path / "tb"), StopAt(epoch=1, iter=3, exc=exc)
    learn = Learner(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), make_dls(64), lr=0.2,
                    cbs=[tb, stop], progress=False)  # fmt: skip
    if isinstance(exc, CancelFitException):
        learn.fit(5)
    else:
        with pytest.raises(RuntimeError, match="boom"):
            learn.fit(5)
    assert tb.writer is None and stop.seen_writer.file_writer is None  # SummaryWriter.close() ran
    values = scalar_values(read_events(tmp_path / "tb"), "valid/loss")
    assert values == [(0, pytest.approx(learn.history[0]["valid_loss"], rel=1e-6))]


def test_unwritable_log_dir_fails_before_training(tmp_path, make_dls):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    counter = CountBatches()
    with pytest.raises(OSError, match=r"TensorBoardCallback\(log_dir=...\) cannot write to .*a_file/runs"):
        fit(make_dls, [TensorBoardCallback(blocker / "runs"), counter])
    assert counter.n == 0


def test_every_n_batches_must_be_positive():
    with pytest.raises(ValueError, match="every_n_batches must be a positive int"):
        TensorBoardCallback(every_n_batches=0)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_rows_equal(rows: list[dict], history: list[dict]) -> None:
    assert len(rows) == len(history)
    for row, expected in zip(rows, history):
        assert list(row) == list(expected)
        assert {k: float(v) for k, v in row.items()} == {k: float(v) for k, v in expected.items()}


def test_csv_rows_equal_history_and_append_continues(tmp_path, make_dls):
    path = tmp_path / "logs" / "history.csv"
    first = fit(make_dls, [CSVLogger(path)], n_epoch=2)
    assert_rows_equal(read_csv(path), first.history)

    resumed = fit(make_dls, [CSVLogger(path, append=True)], n_epoch=3)
    assert_rows_equal(read_csv(path), first.history + resumed.history)
    assert path.read_text().count("train_loss") == 1  # header written once

    fresh = fit(make_dls, [CSVLogger(path)], n_epoch=1)  # append=False starts the file over
    assert_rows_equal(read_csv(path), fresh.history)


@pytest.mark.parametrize("where", ["parent_is_file", "path_is_dir"])
def test_unwritable_csv_path_fails_before_training(tmp_path, make_dls, where):
    blocker = tmp_path / "blocker"
    if where == "parent_is_file":
        blocker.write_text("x")
        path = blocker / "history.csv"
    else:
        blocker.mkdir()
        path = blocker
    counter = CountBatches()
    with pytest.raises(OSError, match=r"CSVLogger\(path=...\) cannot"):
        fit(make_dls, [CSVLogger(path), counter])
    assert counter.n == 0


def test_non_scalar_metric_is_reported_by_name(tmp_path, make_dls):
    def per_sample_hits(preds, targets):
        return (preds.argmax(-1) == targets).float()  # forgot .mean()

    tb = TensorBoardCallback(tmp_path / "tb")
    with pytest.raises(ValueError, match=r"metric 'per_sample_hits' returned a tensor of shape \(128,\)"):
        fit(make_dls, [tb], metrics=[per_sample_hits])
    assert tb.writer is None  # the logger still closed


def test_monitoring_callbacks_write_tb_and_csv(tmp_path, make_dls):
    learn = fit(make_dls, monitoring_callbacks(tmp_path / "out"), n_epoch=2)
    assert_rows_equal(read_csv(tmp_path / "out" / "history.csv"), learn.history)
    assert len(scalar_values(read_events(tmp_path / "out" / "tb"), "valid/loss")) == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_tensorboard_server_serves_the_scalars(tmp_path, make_dls):
    learn = fit(make_dls, [TensorBoardCallback(tmp_path / "tb")], n_epoch=3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "tb"), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast=false", "--reload_interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, points = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(points) < 3:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                for run in get_json(f"{base}/data/runs"):
                    query = urlencode({"run": run, "tag": "valid/loss"})
                    points = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
            except OSError:  # not listening yet, or the run not loaded yet (HTTP 400)
                pass
            time.sleep(0.25)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
    assert [step for _, step, _ in points] == [0, 1, 2], "tensorboard served no valid/loss within 60 s"
    assert [value for *_, value in points] == pytest.approx([r["valid_loss"] for r in learn.history], rel=1e-6)
    assert all(math.isfinite(wall_time) for wall_time, *_ in points)


def test_monitoring_example_prints_seed_lines_and_writes_tensorboard(tmp_path, monkeypatch, capsys):
    example = Path(__file__).parents[2] / "examples" / "monitoring.py"
    argv = [str(example), "--epochs", "2", "--logdir", str(tmp_path / "runs"), "--csv", str(tmp_path / "h.csv")]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(example), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Epoch [1/2], Training Loss: ")
    assert lines[3].startswith("Epoch [2/2], Validation Loss: ")
    rows = read_csv(tmp_path / "h.csv")
    assert f"Validation Loss: {float(rows[1]['valid_loss']):.4f}" in lines[3]
    valid = scalar_values(read_events(tmp_path / "runs"), "valid/loss")
    assert [v for _, v in valid] == pytest.approx([float(r["valid_loss"]) for r in rows], rel=1e-6)
