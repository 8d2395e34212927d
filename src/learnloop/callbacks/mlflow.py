"""MLflow tracking: a fit's params, every `learn.history` column per epoch, its files, and how it ended.

mlflow is optional (`pip install "learnloop[mlflow]"`) and imported only when a fit with `MLflowCallback`
starts. Runs go to `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else MLflow's default (`sqlite:///mlflow.db`
in the working directory; the full `pip install mlflow` views it with `mlflow ui --backend-store-uri sqlite:///mlflow.db`).
With a local sqlite store, a new store's Default experiment and any experiment this callback creates keep their
artifacts beside the database file (`DIR/mlruns/` for `sqlite:///DIR/x.db`), not in whatever folder the fit ran
in (MLflow's own default, `./mlruns`); `artifact_uri` says where a run's went.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import SettingError
from .tracking import TrackerCallback, is_number, run_params

_MISSING = "MLflowCallback needs mlflow: pip install 'learnloop[mlflow]' (or mlflow-skinny, sqlalchemy and alembic)."


class MLflowCallback(TrackerCallback):
    """Logs a fit to an MLflow run: params at the start, each epoch's `learn.history` row (step = epoch),
    the training loss every `log_every_n_batches` batches, and at the end `history.csv`, `loss.png` and
    `model.pt` as artifacts, with status FINISHED, FAILED (the fit raised) or KILLED (Ctrl-C).

    Params: `lr`, `bs`, `n_epoch`, `optimizer` and its hyper-parameters (`opt.momentum`, ...), `model`,
    `n_params`, `loss_func`, `metrics`, `schedule`, `callbacks` and your `hparams`. Inside a
    `with mlflow.start_run():` block (and no `tracking_uri`/`experiment` given) it logs to that run and
    leaves ending it to you. A fit resumed from a `Checkpoint` continues the run the checkpoint names.
    Rank 0 alone logs under torchrun; `lr_find`'s trial fit logs nothing.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        run_name: str | None = None,
        log_every_n_batches: int | None = None,
        hparams: dict[str, Any] | None = None,
    ):
        super().__init__(log_every_n_batches, "mlflow", _MISSING)
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.hparams = dict(hparams or {})
        self.client: Any = None

    # -- events ------------------------------------------------------------------------------
    def before_fit(self):
        super().before_fit()
        self.started, self.owns_run = False, True
        self._connect()

    def before_epoch(self):
        if not self.started:
            self._start_run()

    def after_epoch(self):
        if self.started:
            self._log_new_rows()

    def after_fit(self):
        if not self.started:
            return
        error = self.error  # the exception ending the fit, if any
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        try:
            self._log_new_rows()  # a row recorded just before an exception skipped this epoch's after_epoch
            self._log_files()
        finally:
            if self.owns_run:
                self.client.set_terminated(self.run_id, status)
            self.started = False

    # -- MLflow ------------------------------------------------------------------------------
    def _connect(self) -> None:
        """The client and experiment id; a bad URI or store fails here, before any training."""
        try:  # mlflow imports the store's driver (sqlalchemy for sqlite) when the client is made
            import mlflow
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient

            active = mlflow.active_run()
            uri = self.tracking_uri or mlflow.get_tracking_uri()
            root = artifact_root_beside(uri)
            if root is not None:
                _create_store(uri, root)
            client = MlflowClient(tracking_uri=self.tracking_uri)  # None: $MLFLOW_TRACKING_URI, else default
        except ImportError as e:
            raise ImportError(f"{_MISSING} ({e})") from e
        except MlflowException as e:
            raise _store_error(self.tracking_uri or mlflow.get_tracking_uri(), e) from e
        # Inside the user's `with mlflow.start_run():` (and no store or experiment of our own): log to that run.
        use_active = active is not None and self.tracking_uri is None and self.experiment is None
        self.active_run_id = active.info.run_id if use_active else None
        self.client = client
        try:
            name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
            if name is None:
                self.experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID", "0")  # MLflow's "Default"
            else:
                found = client.get_experiment_by_name(name)
                where = {"artifact_location": (root / name).as_uri()} if root is not None else {}
                self.experiment_id = found.experiment_id if found else client.create_experiment(name, **where)
        except MlflowException as e:
            raise _store_error(client.tracking_uri, e) from e

    @property
    def artifact_uri(self) -> str | None:
        """Where this fit's run keeps its artifacts (a `file://` URI for a local folder); None before it starts."""
        return self.client.get_run(self.run_id).info.artifact_uri if self.run_id is not None else None

    def _start_run(self) -> None:
        """Open this fit's run: the checkpoint's when resuming, else the user's active run, else a new one."""
        self.started, self.n_logged = True, len(self.history)  # a resumed fit's earlier epochs are logged
        if self.run_id is not None:  # set by a resume: the interrupted run carries on, params logged already
            self.client.update_run(self.run_id, status="RUNNING")
            return
        if self.active_run_id is not None:
            self.run_id, self.owns_run = self.active_run_id, False  # its owner ends it
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags={"learnloop": "fit"})
            self.run_id = run.info.run_id
        self._log_params()

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = {k: str(v) for k, v in self.run_params().items()}
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def run_params(self) -> dict[str, Any]:
        """What this fit is (`tracking.run_params`) and your `hparams`."""
        return {**run_params(self.learn), **self.hparams}

    def _log_new_rows(self) -> None:
        """The batch losses so far and each `learn.history` row not logged yet (step = its epoch), in one call."""
        from mlflow.entities import Metric

        values = [("batch_loss", loss, step) for step, loss in self.take_batch_losses()]
        for row in self.take_new_rows():
            values += [(key, float(v), row["epoch"]) for key, v in row.items() if key != "epoch" and is_number(v)]
        now = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(key, v, now, step) for key, v, step in values])

    def _log_files(self) -> None:
        """history.csv, loss.png and model.pt (the weights, for `learn.load`) as the run's artifacts."""
        from ..plots import plot_loss

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if self.history:
                write_history_csv(self.history, folder / "history.csv")
            recorder = getattr(self.learn, "recorder", None)
            if recorder is not None and recorder.losses:
                plot_loss(self.learn, folder / "loss.png", show=False)
            self.learn.save(folder / "model.pt", with_opt=False)
            self.client.log_artifacts(self.run_id, str(folder))


def write_history_csv(history: list[dict], path: str | os.PathLike) -> Path:
    """`learn.history` as a CSV file: a header with every key seen, one row per epoch."""
    keys = list(dict.fromkeys(key for row in history for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)
    return Path(path)


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a local sqlite store `sqlite:///DIR/x.db` (DIR relative to the working directory, or
    absolute with four slashes), resolved; None for any other store, whose server or URI decides where artifacts go."""
    prefix = "sqlite:///"
    path = tracking_uri.split("?", 1)[0][len(prefix):] if tracking_uri.startswith(prefix) else ""
    return None if path in ("", ":memory:") else Path(path).resolve()


def artifact_root_beside(tracking_uri: str) -> Path | None:
    """`DIR/mlruns` for a local sqlite store in DIR; None for any other store."""
    db = sqlite_file(tracking_uri)
    return None if db is None else db.parent / "mlruns"


def _create_store(tracking_uri: str, artifact_root: Path) -> None:
    """Create a sqlite store that does not exist yet with its artifact root beside it: its Default experiment is
    made with the store and keeps that location for good (an existing store's experiments keep theirs)."""
    db = sqlite_file(tracking_uri)
    if db is None or db.exists() or not db.parent.is_dir():  # a missing folder: MLflow's client names the problem
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(tracking_uri, artifact_root.as_uri())


def _store_error(uri: str, e: Any) -> ValueError:
    return SettingError(f"MLflowCallback cannot use the tracking store {uri!r}: {str(e.message).strip()} Pass "
                      f"tracking_uri= a store such as 'sqlite:///mlflow.db' or 'http://host:5000', or set "
                      f"MLFLOW_TRACKING_URI.")  # fmt: skip


def _now_ms() -> int:
    return int(time.time() * 1000)
