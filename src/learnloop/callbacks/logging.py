"""Loggers: TensorBoard event files and a CSV file with one row per epoch.

Both run after the `Recorder` (order 50) and the progress table (60), so `self.history[-1]` is the
epoch that just ended. Both check their destination in `before_fit`, so a bad path fails before any
training, and both close their files in `after_fit`, which runs even when a fit is cancelled or raises.
"""

from __future__ import annotations

import csv
import importlib
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from ..distributed import unwrap
from ..errors import OutputPathError
from .core import Callback


def ensure_writable_dir(path: str | os.PathLike, owner: str) -> Path:
    """Create directory `path` and write a probe file in it; raise an `OutputPathError` (an `OSError`) naming
    `owner` if it can't."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise OutputPathError(
            f"{owner} cannot write to {str(path)!r} ({e.strerror or e}). Pass a directory you can write to, "
            f"or create it first."
        ) from e
    return path


def _import_quietly(module: str) -> None:
    """Import `module` to warm it up; a failure is left for the real import to report."""
    try:
        importlib.import_module(module)
    except ImportError:  # the main thread's own import reports it, with its traceback
        return


def batch_size_of(dls: Any) -> int | None:
    """The train loader's batch size, or None when it has none."""
    # torch's DataLoader calls it batch_size, learnloop's bs; anything else: unknown.
    train = getattr(dls, "train", None)
    for attr in ("batch_size", "bs"):
        value = getattr(train, attr, None)
        if isinstance(value, int):
            return value
    return None


def _tag(key: str) -> str:
    """The TensorBoard tag for a history key: train_loss -> train/loss, valid_accuracy -> valid/accuracy."""
    for phase in ("train", "valid"):
        if key.startswith(phase + "_"):
            return f"{phase}/{key[len(phase) + 1 :]}"
    return key


class TensorBoardCallback(Callback):
    """Writes TensorBoard scalars per epoch (and per batch), histograms and hparams; view with `tensorboard --logdir`.

    Per epoch, with global step = `epoch` (0-based, as in `learn.history`): `train/loss`, `valid/loss`,
    `valid/<metric>`, `lr` and `time` (seconds). With `every_n_batches=n`: `train/batch_loss` every n-th
    training batch, with step = `learn.train_iter`. With `log_hist`: weight histograms (`weights/<name>`)
    per epoch and gradient histograms (`grads/<name>`) from each epoch's last training batch. With
    `log_graph`: the model graph, traced once on the first batch. At the end of the fit: hparams (lr, bs,
    n_epoch and `hparams`) with the final epoch's values, in the HPARAMS tab.
    """

    order = 70
    during_lr_find = False
    main_only = True  # rank 0 alone prints and writes under torchrun

    def __init__(
        self,
        log_dir: str | os.PathLike = "runs",
        every_n_batches: int | None = None,
        log_graph: bool = False,
        log_hist: bool = False,
        hparams: dict[str, Any] | None = None,
    ):
        if every_n_batches is not None and (not isinstance(every_n_batches, int) or every_n_batches < 1):
            raise ValueError(f"every_n_batches must be a positive int or None, got {every_n_batches!r}.")
        self.log_dir, self.every_n_batches = Path(log_dir), every_n_batches
        self.log_graph, self.log_hist, self.hparams = log_graph, log_hist, dict(hparams or {})
        self.writer = None

    def before_fit(self):
        ensure_writable_dir(self.log_dir, f"{type(self).__name__}(log_dir=...)")
        # The writer is made when it first writes, so its import (about a second) never delays the first
        # batch; meanwhile a thread imports it on the other core.
        threading.Thread(target=_import_quietly, args=("torch.utils.tensorboard",), daemon=True).start()
        self.start_lr, self.graph_done = self.lr, not self.log_graph

    def _writer(self) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        return self.writer

    def before_batch(self):
        if not self.graph_done and self.training:
            self.graph_done = True
            self._add_graph()

    def _add_graph(self):
        model = unwrap(self.model)  # under DDP: the user's model, with the names it has in one process
        if not isinstance(model, torch.nn.Module):
            warnings.warn("log_graph needs a torch.nn.Module (add_graph traces it with torch.jit); skipped.")
            return
        was_training = model.training
        try:
            with warnings.catch_warnings():  # add_graph uses torch.jit.trace, which warns it is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                self._writer().add_graph(model, self.xb)
        finally:
            model.train(was_training)  # tracing may switch to eval mode

    def after_batch(self):
        # Checked before touching the loss, so batches that are not logged never wait for the device.
        n = self.every_n_batches
        if n is not None and self.training and self.iter % n == 0:
            self._writer().add_scalar("train/batch_loss", float(self.loss.detach()), self.learn.train_iter)

    def after_backward(self):
        # Grads are zeroed after every step, so histograms are taken here, on the epoch's last batch.
        if self.log_hist and self.iter == self.n_iter - 1:
            for name, p in unwrap(self.model).named_parameters():
                if p.grad is not None:
                    self._writer().add_histogram(f"grads/{name}", p.grad.detach().cpu(), self.epoch)

    def after_epoch(self):
        for key, value in self.history[-1].items():
            if key != "epoch" and isinstance(value, (int, float)):
                self._writer().add_scalar(_tag(key), value, self.epoch)
        if self.log_hist:
            for name, p in unwrap(self.model).named_parameters():
                self._writer().add_histogram(f"weights/{name}", p.detach().cpu(), self.epoch)
        self._writer().flush()  # each epoch: a crash or a live `tensorboard` sees every finished epoch

    def after_fit(self):
        if self.writer is None:  # before_fit failed, or nothing was written
            return
        try:
            if self.history:
                self._add_hparams()
        finally:
            self.writer.close()
            self.writer = None

    def _add_hparams(self):
        from torch.utils.tensorboard.summary import hparams

        values = {"lr": self.start_lr, "bs": batch_size_of(self.dls), "n_epoch": self.n_epoch, **self.hparams}
        values = {k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))}
        final = {_tag(k): v for k, v in self.history[-1].items() if k not in ("epoch", "lr", "time")}
        # SummaryWriter.add_hparams would open a second run and re-log the metrics there; writing the
        # three summaries into this run instead lets the HPARAMS tab read the final values of the
        # existing scalar tags, so each tag keeps exactly one value per epoch.
        for summary in hparams(values, final):
            self.writer.file_writer.add_summary(summary)


class CSVLogger(Callback):
    """Appends one row per epoch (the keys of `learn.history`) to a CSV file; `append=True` continues one."""

    order = 70
    during_lr_find = False
    main_only = True  # rank 0 alone prints and writes under torchrun

    def __init__(self, path: str | os.PathLike = "history.csv", append: bool = False):
        self.path, self.append, self.file = Path(path), append, None

    def before_fit(self):
        owner = f"{type(self).__name__}(path=...)"
        ensure_writable_dir(self.path.parent, owner)
        # In append mode an existing header fixes the columns; rows are then written without a header.
        self.fieldnames = _csv_header(self.path) if self.append else None
        try:
            self.file = open(self.path, "a" if self.append else "w", newline="")
        except OSError as e:
            raise OSError(f"{owner} cannot open {str(self.path)!r} for writing ({e.strerror or e}).") from e
        self.writer, self.warned = None, False

    def after_epoch(self):
        row = self.history[-1]
        if self.writer is None:
            write_header = self.fieldnames is None
            self.fieldnames = self.fieldnames or list(row)
            self.writer = csv.DictWriter(self.file, self.fieldnames, extrasaction="ignore")
            if write_header:
                self.writer.writeheader()
        extra = [k for k in row if k not in self.fieldnames]
        if extra and not self.warned:
            self.warned = True
            warnings.warn(f"CSVLogger: columns {extra} are not in the header of {self.path}; they are not written.")
        self.writer.writerow(row)
        self.file.flush()

    def after_fit(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def _csv_header(path: Path) -> list[str] | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def monitoring_callbacks(out_dir: str | os.PathLike, append: bool = False, tensorboard: bool = True) -> list[Callback]:
    """The CLI's loggers: CSV to `out_dir/history.csv`, and TensorBoard to `out_dir/tb` when `tensorboard`."""
    out_dir = Path(out_dir)
    csv = CSVLogger(out_dir / "history.csv", append=append)
    return [TensorBoardCallback(out_dir / "tb"), csv] if tensorboard else [csv]
