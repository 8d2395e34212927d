"""lr_find has no side effects: with file-writing, stopping and weight-restoring callbacks attached, and a
seeded learnloop DataLoader, `lr_find(); fit(n)` ends bit for bit where `fit(n)` alone ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learnloop import Callback, Learner
from learnloop.callbacks import Checkpoint, CSVLogger, EarlyStopping, SaveBest, TensorBoardCallback
from learnloop.data import DataLoaders
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy


def _learner(out: Path) -> Learner:
    torch.manual_seed(0)
    train_ds, valid_ds = digits(seed=0)
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=64, seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    cbs = [Checkpoint(out / "last.ckpt"), SaveBest(out / "best.pt"), CSVLogger(out / "history.csv"),
           TensorBoardCallback(out / "tb"), EarlyStopping(patience=1)]
    return Learner(model, dls, lr=0.1, metrics=[accuracy], cbs=cbs, progress=False)


def _rows(learn: Learner) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in learn.history]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_lr_find_then_fit_equals_fit_alone_and_touches_no_file(tmp_path):
    alone, found = _learner(tmp_path / "alone"), _learner(tmp_path / "found")
    alone.fit(1)
    found.fit(1)  # both have files, a history and a loader one epoch in
    before = _files(tmp_path / "found")
    result = found.lr_find(max_iter=30)  # crosses an epoch of 23 batches: the loader's counter moves
    assert len(result.lrs) > 20 and _files(tmp_path / "found") == before
    assert _rows(found) == _rows(alone) and found.dls.train.epoch == alone.dls.train.epoch == 1
    alone.fit(2)
    found.fit(2)
    assert all(torch.equal(p, q) for p, q in zip(alone.model.parameters(), found.model.parameters()))
    assert _rows(found) == _rows(alone)
    resumed = torch.load(tmp_path / "found" / "last.ckpt", weights_only=True)
    assert resumed["history"][-1]["epoch"] == 1  # the fit's checkpoint, not the finder's


def test_only_callbacks_that_run_during_lr_find_see_its_batches(tmp_path):
    class Counts(Callback):
        def __init__(self):
            self.n = 0

        def after_batch(self):
            self.n += 1

    class Quiet(Counts):
        during_lr_find = False

    learn = _learner(tmp_path)
    counts, quiet = Counts(), Quiet()
    learn.add_cbs([counts, quiet])
    learn.lr_find(max_iter=10)
    assert (counts.n, quiet.n) == (10, 0)
    assert learn.cbs[-2:] == [counts, quiet] and learn.counts is counts  # back, in their places


def test_lr_find_restores_the_model_even_when_the_loss_fails(tmp_path):
    learn = _learner(tmp_path)
    weights = [p.clone() for p in learn.model.parameters()]

    def breaks(preds, targets):
        if learn.train_iter == 3:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(preds, targets)

    learn.loss_func = breaks
    with pytest.raises(RuntimeError, match="boom"):
        learn.lr_find()
    assert all(torch.equal(p, w) for p, w in zip(learn.model.parameters(), weights))
    assert learn.lr == 0.1 and not (tmp_path / "last.ckpt").exists()
