"""WandbCallback in offline mode, read back from the run's own `.wandb` file with wandb's protobuf records."""

from __future__ import annotations

import csv
import json
import struct
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("wandb")

import wandb  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

from learnloop import Callback, Learner  # noqa: E402
from learnloop.callbacks import Checkpoint, WandbCallback  # noqa: E402
from learnloop.data import DataLoaders  # noqa: E402
from learnloop.data.datasets import digits  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402

_BLOCK, _HEADER = 32768, 7  # wandb's run file: LevelDB-style log blocks; a 7-byte ":W&B" header, 7-byte record heads


def run_records(path: Path) -> list:
    """Every `Record` in an offline run's `.wandb` file."""
    data, pos, pending, records = path.read_bytes(), _HEADER, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if n == 0 and kind == 0:  # the zero padding at a block's end
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # a FULL record, or the LAST piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_runs(root: Path, run_id: str) -> tuple[dict, list[dict]]:
    """(config, history rows) of W&B run `run_id` over all its offline run folders under `root`, in order."""
    wandb.teardown()  # wandb's service writes the run files in the background: shut it down, and they are complete
    config, rows = {}, []
    for path in sorted(root.glob(f"wandb/offline-run-*-{run_id}*/run-{run_id}.wandb")):  # a resume: same id, new folder
        for record in run_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                rows.append({k: v for k, v in items.items() if not k.startswith("_")})  # not wandb's _step, _runtime
    return config, rows


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def learner(make_mlp) -> Learner:
    return Learner(make_mlp(0), DataLoaders.from_dsets(*digits(), bs=128, seed=0), lr=0.3, metrics=[accuracy],
                   progress=False)


class StopAfterEpoch(Callback):
    order = 60  # after the Recorder wrote the row, before W&B's after_epoch (70) and the checkpoint's (90)

    def __init__(self, epoch: int):
        self.at = epoch

    def after_epoch(self):
        if self.epoch == self.at:
            raise KeyboardInterrupt


def test_run_holds_the_config_every_epoch_of_history_and_batch_losses(offline, make_mlp):
    learn, cb = learner(make_mlp), WandbCallback(config={"seed": 0}, log_every_n_batches=4, project="learnloop")
    learn.fit_one_cycle(3, lr_max=0.5, cbs=[cb])
    config, rows = read_runs(offline, cb.run_id)
    assert {k: config[k] for k in ("lr", "bs", "n_epoch", "optimizer", "model", "metrics", "seed")} == {
        "lr": 0.5, "bs": 128, "n_epoch": 3, "optimizer": "SGD", "model": "Sequential", "metrics": "accuracy", "seed": 0}
    epochs = [row for row in rows if "epoch" in row]
    assert epochs == learn.history  # every key, every value
    batches = [(row["train_iter"], row["batch_loss"]) for row in rows if "batch_loss" in row]
    n = 3 * len(learn.dls.train)
    assert batches == [(s, pytest.approx(learn.recorder.losses[s])) for s in range(0, n, 4)]
    assert learn.history[-1]["valid_loss"] < learn.history[0]["valid_loss"]


def test_a_resumed_fit_continues_the_same_run_and_lr_find_logs_nothing(offline, make_mlp, tmp_path):
    ckpt = tmp_path / "last.ckpt"
    learn, cb = learner(make_mlp), WandbCallback()
    learn.add_cbs([cb])
    learn.lr_find(max_iter=5)
    assert cb.run_id is None and not list(offline.glob("wandb/offline-run-*"))  # silent during lr_find
    learn.remove_cbs([cb])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(3, cbs=[cb, Checkpoint(ckpt), StopAfterEpoch(0)])
    again, cb2 = learner(make_mlp), WandbCallback()
    again.fit(3, cbs=[cb2, Checkpoint(ckpt)], resume=ckpt)
    assert cb2.run_id == cb.run_id
    _, rows = read_runs(offline, cb.run_id)
    assert [row["epoch"] for row in rows] == [0, 1, 2]  # epoch 0 from the first fit, 1-2 from the resume, each once
    assert rows == again.history


def test_missing_wandb_and_bad_arguments_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="log_every_n_batches must be a positive int"):
        WandbCallback(log_every_n_batches=0)
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'learnloop\[wandb\]'"):
        WandbCallback()


def test_the_cli_wandb_flag_logs_the_run(offline, run_learnloop):
    result = run_learnloop("fit", "digits", "--epochs", "2", "--out", "run", "--no-tensorboard", "--wandb", "cli-test")
    assert result.returncode == 0, result.stderr
    (run_dir,) = offline.glob("wandb/offline-run-*")
    run_id = run_dir.name.rsplit("-", 1)[1]
    assert f"learnloop: W&B run {run_id}" in result.stdout
    config, rows = read_runs(offline, run_id)
    assert (config["dataset"], config["arch"], config["n_epoch"], config["bs"]) == ("digits", "simple_cnn", 2, 32)
    written = list(csv.DictReader(open(offline / "run" / "history.csv")))  # what the CLI's CSVLogger wrote
    assert [row["valid_loss"] for row in rows] == pytest.approx([float(row["valid_loss"]) for row in written])
    assert rows[-1]["valid_accuracy"] > 0.8


def test_the_cli_wandb_flag_without_wandb_is_one_line(capsys, monkeypatch):
    from learnloop.cli import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    assert main(["fit", "digits", "--wandb", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("learnloop: error: --wandb: WandbCallback needs wandb: pip install 'learnloop[wandb]'")
