"""`learnloop fit --ckpt-every N` checkpoints to OUT/last.ckpt; `--resume` continues from it."""

from __future__ import annotations

import pytest

from learnloop import load_checkpoint
from learnloop.callbacks import Checkpoint
from learnloop.cli import main


def test_cli_checkpoints_every_n_batches_and_resumes(tmp_path, monkeypatch):
    saves, save = [], Checkpoint.save
    monkeypatch.setattr(Checkpoint, "save", lambda self, epoch, it: saves.append((epoch, it)) or save(self, epoch, it))
    args = ["fit", "digits", "--epochs", "1", "--bs", "256", "--out", str(tmp_path), "--no-tensorboard"]
    assert main([*args, "--ckpt-every", "2"]) == 0  # 6 batches: checkpoints after batches 2 and 4, and the epoch
    assert saves == [(0, 2), (0, 4), (1, 0)]
    state = load_checkpoint(tmp_path / "last.ckpt")
    assert (state["epoch"], state["iter"]) == (1, 0)
    with pytest.warns(UserWarning, match="already finished"):
        assert main([*args, "--resume"]) == 0
