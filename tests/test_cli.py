"""The `learnloop` command: fit and lr-find on digits, its files, its errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from learnloop import Learner
from learnloop.callbacks.schedule import schedule_cbs
from learnloop.cli import build_parser, main
from learnloop.metrics import accuracy


def test_fit_digits_prints_the_table_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "digits", "--epochs", "3", "--out", str(out), "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line[:1].isdigit()]
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 3 and float(rows[-1]["valid_accuracy"]) >= 0.9
    state = torch.load(out / "model.pt", weights_only=True)
    assert "model" in state and "opt" in state
    with Image.open(out / "loss.png") as img:
        assert img.format == "PNG" and img.size[0] >= 400


def test_the_installed_command_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "learnloop", "fit", "digits", "--epochs", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "train_loss" in result.stdout and (tmp_path / "tb").is_dir()
    assert "tensorboard --logdir" in result.stdout


def test_lr_find_prints_a_suggestion_and_writes_the_plot(tmp_path, capsys):
    assert main(["lr-find", "digits", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    suggestion = float(printed.split("suggested lr: ")[1].split()[0])
    assert 1e-3 < suggestion < 5
    with Image.open(tmp_path / "lr_find.png") as img:
        assert img.format == "PNG"


def test_unknown_dataset_is_a_clear_error(capsys):
    assert main(["fit", "no-such-data", "--out", "unused"]) == 2
    assert "no such folder. Use 'digits', 'mnist', or the path of an image folder" in capsys.readouterr().err


def test_missing_mnist_file_names_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LEARNLOOP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["fit", "mnist", "--out", str(tmp_path / "o")]) == 2
    assert "LEARNLOOP_DATA" in capsys.readouterr().err


@pytest.fixture
def learner(make_dls, make_mlp):
    def make(bs: int = 32, seed: int = 0, **kwargs) -> Learner:
        return Learner(make_mlp(seed), make_dls(bs, seed), metrics=[accuracy], progress=False, **kwargs)

    return make


@pytest.mark.parametrize("name, first", [("onecycle", 0.02), ("step", 0.2), ("cos", 0.2)])
def test_schedule_cbs_for_the_cli(learner, name, first):
    learn = learner(bs=512)  # lr 0.01 until the schedule sets it
    learn.fit(3, cbs=schedule_cbs(name, 0.2, 3))
    lrs = learn.recorder.lrs
    assert lrs[0] == pytest.approx(first) and max(lrs) == pytest.approx(0.2, rel=0.05)
    assert lrs[-1] < 0.2 / 5


def test_schedule_cbs_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of onecycle, step, cos, none"):
        schedule_cbs("linear", 0.1, 3)


def test_the_sched_flag_offers_exactly_the_schedules_there_are():
    from learnloop.callbacks.schedule import SCHEDULES
    from learnloop.cli.config import SCHEDULES as FLAG_CHOICES  # a copy, so that --help needs no torch

    assert FLAG_CHOICES == SCHEDULES




def test_fit_with_mlflow_logs_the_run_read_back_by_mlflows_client(tmp_path):
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    (tmp_path / "store").mkdir()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"  # given by the environment: the bare flag honours it
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "learnloop", "fit", "digits", "--epochs", "2", "--out", "run", "--no-tensorboard",
         "--mlflow"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs(["0"])  # the Default experiment of the store this run created
    assert f"MLflow run {run.info.run_id}, artifacts in {run.info.artifact_uri};" in result.stdout
    assert run.info.status == "FINISHED"
    # beside the store, not in the folder the command ran in (MLflow's default, ./mlruns)
    assert run.info.artifact_uri.startswith((tmp_path / "store" / "mlruns").as_uri())
    assert not (tmp_path / "mlruns").exists()
    params = run.data.params
    assert (params["dataset"], params["arch"], params["n_epoch"], params["bs"]) == ("digits", "simple_cnn", "2", "32")
    assert params["schedule"].startswith("OneCycle(lr_max=0.5")
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))  # what the CLI's CSVLogger wrote
    for key in ("train_loss", "valid_loss", "valid_accuracy"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert got == [(i, float(row[key])) for i, row in enumerate(rows)]
    assert float(rows[-1]["valid_accuracy"]) > 0.8
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"history.csv", "loss.png", "model.pt"}
    saved = torch.load(client.download_artifacts(run.info.run_id, "model.pt", str(tmp_path)), weights_only=True)
    assert saved["model"].keys() == torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"].keys()


def test_mlflow_flag_takes_an_optional_uri_and_a_missing_mlflow_is_one_line(capsys, monkeypatch):
    parse = build_parser().parse_args
    assert parse(["fit", "digits", "--mlflow", "sqlite:///m.db"]).mlflow == "sqlite:///m.db"
    assert parse(["fit", "digits", "--mlflow"]).mlflow == "" and parse(["fit", "digits"]).mlflow is None
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main(["fit", "digits", "--mlflow", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("learnloop: error: --mlflow: MLflowCallback needs mlflow: pip install 'learnloop[mlflow]'")
    assert "Traceback" not in err
