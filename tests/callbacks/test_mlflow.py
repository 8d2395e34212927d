"""MLflowCallback, read back with MLflow's own client from a local sqlite store: params, metrics, artifacts, status."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")  # the sqlite store

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from learnloop import Callback, Learner  # noqa: E402
from learnloop.callbacks import Checkpoint, MLflowCallback  # noqa: E402
from learnloop.data import ArrayDataset, DataLoader, DataLoaders  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, MlflowClient]:
    """One sqlite store for the module (creating its tables takes seconds); artifacts under the tmp dir."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    client.create_experiment("learnloop-tests", artifact_location=str(root / "artifacts"))
    return uri, client


def learner(digits_tensors, seed: int = 0) -> Learner:
    xt, yt, xv, yv = digits_tensors
    torch.manual_seed(seed)
    dls = DataLoaders(DataLoader(ArrayDataset(xt, yt), 64, shuffle=True, seed=seed),
                      DataLoader(ArrayDataset(xv, yv), 128))  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return Learner(model, dls, lr=0.2, metrics=[accuracy], progress=False)


def tracker(store, **kwargs) -> MLflowCallback:
    return MLflowCallback(store[0], experiment="learnloop-tests", **kwargs)


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def assert_metrics_equal_history(client: MlflowClient, run_id: str, history: list[dict]) -> None:
    for key in history[0]:
        if key != "epoch":
            assert metric_history(client, run_id, key) == [(row["epoch"], row[key]) for row in history], key


class RaiseAt(Callback):
    """Raises `exc` before training batch `iter` of epoch `epoch`, or (`iter=None`) at the end of that epoch."""

    def __init__(self, epoch: int, iter: int | None, exc: BaseException, order: int = 0):
        self.at, self.exc, self.order = (epoch, iter), exc, order

    def before_batch(self):
        if self.training and (self.epoch, self.iter) == self.at:
            raise self.exc

    def after_epoch(self):
        if (self.epoch, None) == self.at:
            raise self.exc


def test_run_holds_params_every_epoch_of_history_and_the_files(store, digits_tensors, tmp_path):
    _, client = store
    learn = learner(digits_tensors)
    cb = tracker(store, run_name="digits-mlp", log_every_n_batches=5, hparams={"seed": 0, "note": "mlp"})
    learn.fit_one_cycle(3, lr_max=0.5, cbs=[cb])
    assert learn.history[-1]["valid_accuracy"] > 0.85

    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "digits-mlp"
    params = run.data.params
    assert {k: params[k] for k in ("lr", "bs", "n_epoch", "optimizer", "model", "metrics", "seed", "note")} == {
        "lr": "0.5", "bs": "64", "n_epoch": "3", "optimizer": "SGD", "model": "Sequential", "metrics": "accuracy",
        "seed": "0", "note": "mlp"}  # fmt: skip
    assert params["schedule"] == "OneCycle(lr_max=0.5, pct_start=0.25, div=10, div_final=100000)"
    assert params["n_params"] == str(64 * 32 + 32 + 330)
    assert_metrics_equal_history(client, cb.run_id, learn.history)
    n_iter = len(learn.dls.train)
    steps = [s for s in range(3 * n_iter) if s % 5 == 0]
    assert metric_history(client, cb.run_id, "batch_loss") == [(s, learn.recorder.losses[s]) for s in steps]

    assert sorted(a.path for a in client.list_artifacts(cb.run_id)) == ["history.csv", "loss.png", "model.pt"]
    folder = tmp_path / "got"
    folder.mkdir()
    client.download_artifacts(cb.run_id, "", str(folder))
    rows = list(csv.DictReader(open(folder / "history.csv")))
    assert [float(r["valid_loss"]) for r in rows] == [row["valid_loss"] for row in learn.history]
    with Image.open(folder / "loss.png") as img:
        assert img.format == "PNG" and img.size == (600, 400)
    other = learner(digits_tensors, seed=1).load(folder / "model.pt")
    assert all(torch.equal(a, b) for a, b in zip(other.model.state_dict().values(), learn.model.state_dict().values()))


@pytest.mark.parametrize("exc, status", [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_fit_that_raises_ends_its_run_failed_or_killed_with_what_it_had(store, digits_tensors, exc, status):
    _, client = store
    learn, cb = learner(digits_tensors), tracker(store)
    with pytest.raises(type(exc)):
        learn.fit(3, cbs=[cb, RaiseAt(1, 3, exc)])
    run = client.get_run(cb.run_id)
    assert run.info.status == status
    assert len(learn.history) == 1
    assert_metrics_equal_history(client, cb.run_id, learn.history)
    assert {a.path for a in client.list_artifacts(cb.run_id)} == {"history.csv", "loss.png", "model.pt"}


def test_a_resumed_fit_continues_the_same_run(store, digits_tensors, tmp_path):
    _, client = store
    ckpt = tmp_path / "last.ckpt"
    learn, cb = learner(digits_tensors), tracker(store)
    # Ctrl-C after the Recorder (50) wrote epoch 1's row, before MLflow's after_epoch (70) and the checkpoint's
    # (90): after_fit still logs that row and the checkpoint saves the end of epoch 1.
    with pytest.raises(KeyboardInterrupt):
        learn.fit(4, cbs=[cb, Checkpoint(ckpt), RaiseAt(1, None, KeyboardInterrupt(), order=60)])
    assert client.get_run(cb.run_id).info.status == "KILLED"

    again, cb2 = learner(digits_tensors, seed=5), tracker(store)
    again.fit(4, cbs=[cb2, Checkpoint(ckpt)], resume=ckpt)
    assert cb2.run_id == cb.run_id
    assert client.get_run(cb.run_id).info.status == "FINISHED"
    assert [row["epoch"] for row in again.history] == [0, 1, 2, 3]
    assert_metrics_equal_history(client, cb.run_id, again.history)  # each epoch once, epochs 2-3 from the resume


def test_env_uri_and_the_users_active_run(store, digits_tensors, monkeypatch):
    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "learnloop-tests")
    learn, cb = learner(digits_tensors), MLflowCallback()
    learn.fit(1, cbs=[cb])
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "learnloop-tests"
    assert (run.data.params["lr"], run.data.params["schedule"]) == ("0.2", "none")

    with mlflow.start_run() as active:
        learn.fit(1, cbs=[cb])
        assert cb.run_id == active.info.run_id
        assert client.get_run(cb.run_id).info.status == "RUNNING"  # the user's run: its `with` block ends it
    assert client.get_run(cb.run_id).info.status == "FINISHED"
    assert_metrics_equal_history(client, cb.run_id, learn.history[1:])


def test_a_new_experiment_keeps_its_artifacts_beside_a_sqlite_store(store, digits_tensors, tmp_path, monkeypatch):
    uri, client = store
    monkeypatch.chdir(tmp_path)  # a folder other than the store's: MLflow's default would put ./mlruns here
    learn, cb = learner(digits_tensors), MLflowCallback(uri, experiment="beside-the-store")
    learn.fit(1, cbs=[cb])
    beside = Path(uri[len("sqlite:///"):]).parent / "mlruns" / "beside-the-store"
    assert cb.artifact_uri == client.get_run(cb.run_id).info.artifact_uri
    assert cb.artifact_uri.startswith(beside.as_uri()) and not (tmp_path / "mlruns").exists()
    assert {a.path for a in client.list_artifacts(cb.run_id)} == {"history.csv", "loss.png", "model.pt"}


def test_lr_find_logs_no_run(store, digits_tensors):
    _, client = store
    learn = learner(digits_tensors)
    cb = tracker(store, run_name="lr-find-check")
    learn.add_cbs([cb])
    learn.lr_find()
    assert cb.run_id is None
    learn.fit(1)
    runs = client.search_runs([client.get_experiment_by_name("learnloop-tests").experiment_id],
                              filter_string="attributes.run_name = 'lr-find-check'")  # fmt: skip
    assert [r.info.run_id for r in runs] == [cb.run_id]


def test_a_bad_store_fails_before_training(digits_tensors):
    learn = learner(digits_tensors)
    with pytest.raises(ValueError, match="cannot use the tracking store 'nosuch://x'.*MLFLOW_TRACKING_URI"):
        learn.fit(1, cbs=[MLflowCallback("nosuch://x")])
    assert learn.history == [] and learn.recorder.losses == []


def test_missing_mlflow_and_bad_arguments_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="log_every_n_batches must be a positive int"):
        MLflowCallback(log_every_n_batches=0)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'learnloop\[mlflow\]'"):
        MLflowCallback()
