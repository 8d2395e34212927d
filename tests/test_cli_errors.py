"""The real `learnloop` command on user mistakes: one `learnloop: error:` line, exit status 2, no traceback
(unless --debug or LEARNLOOP_DEBUG=1); earlier runs are never overwritten by accident; --resume checks its
checkpoint."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from learnloop import UserError, load_checkpoint
from learnloop.cli import main
from learnloop.saving import atomic_save

FIT = ("fit", "digits", "--epochs", "1", "--no-tensorboard")


def error_line(result) -> str:
    """The one stderr line of a command that failed on a user mistake."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learnloop: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def image_folder(root: Path, train: list[str], val: list[str], n: int = 3) -> Path:
    """ROOT/train/<label>/*.png and ROOT/val/<label>/*.png: small random RGB images."""
    rng = np.random.default_rng(0)
    for split, labels in (("train", train), ("val", val)):
        for label in labels:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """OUT of one finished `learnloop fit digits --epochs 1` (bs 128: 12 batches)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*FIT, "--bs", "128", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A copy of the finished run, to change freely."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def main_error(capsys, *args: str) -> str:
    """The one stderr line of `main(args)` (in this process) on a user mistake."""
    try:
        status = main(list(args))
    except SystemExit as e:  # argparse's errors
        status = e.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learnloop: error: "), lines
    return lines[0]


# -- flags --------------------------------------------------------------------------------------
def test_bad_flag_values_name_the_flag(run_learnloop):
    line = error_line(run_learnloop("fit", "digits", "--epochs", "0"))
    assert "argument --epochs: must be at least 1, got 0 (see 'learnloop fit --help')" in line


@pytest.mark.parametrize("flags, says", [
    (("--lr", "-1"), "argument --lr: must be above 0, got -1"),
    (("--lr", "nan"), "argument --lr: must be above 0, got nan"),
    (("--bs", "0"), "argument --bs: must be at least 1, got 0"),
    (("--epochs", "two"), "argument --epochs: expected a whole number, got 'two'"),
    (("--workers", "-1"), "argument --workers: must be at least 0, got -1"),
    (("--ckpt-every", "0"), "argument --ckpt-every: must be at least 1, got 0"),
    (("--device", "gpu0"), "--device 'gpu0' is not a device: use cpu, cuda, cuda:N or mps"),
])  # fmt: skip
def test_more_bad_flag_values(capsys, tmp_path, flags, says):
    assert says in main_error(capsys, *FIT, "--out", str(tmp_path / "o"), *flags)


def test_a_device_this_machine_lacks_is_one_line(run_learnloop):
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    line = error_line(run_learnloop(*FIT, "--device", f"cuda:{n}" if n else "cuda", "--out", "o"))
    assert "--device cuda" in line and ("no CUDA GPU is available" in line or f"has {n} CUDA GPU" in line)


# -- data ---------------------------------------------------------------------------------------
def test_a_truncated_npz(run_learnloop, tmp_path):
    x = np.zeros((20, 28, 28), np.uint8)
    np.savez(tmp_path / "full.npz", x_train=x, y_train=np.arange(20) % 10, x_test=x, y_test=np.arange(20) % 10)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    line = error_line(run_learnloop("fit", "mnist", "--data", "cut.npz", "--out", "o"))
    assert "cut.npz can't be read as an .npz" in line and "truncated" in line


@pytest.mark.parametrize("train, val, says", [
    ([], [], "no images"),
    (["cat"], ["cat"], "has 1 class folder ['cat']: a classifier needs at least two"),
    (["cat", "dog"], ["cat", "cow"], "has classes that train/ lacks: ['cow']; train/ has ['cat', 'dog']"),
])  # fmt: skip
def test_image_folders_that_cannot_train(run_learnloop, tmp_path, train, val, says):
    root = image_folder(tmp_path / "imgs", train, val)
    for split in ("train", "val"):
        (root / split / "cat").mkdir(parents=True, exist_ok=True)  # with no images in the first case
    assert says in error_line(run_learnloop("fit", "imgs", "--out", "o", "--no-tensorboard"))


def test_a_corrupt_image_is_named_the_same_with_and_without_workers(run_learnloop, tmp_path):
    root = image_folder(tmp_path / "imgs", ["cat", "dog"], ["cat", "dog"])
    (root / "train" / "dog" / "1.png").write_bytes(b"not a png at all")
    lines = [error_line(run_learnloop("fit", "imgs", "--size", "8", "--workers", w, "--out", f"o{w}",
                                      "--no-tensorboard")) for w in ("0", "2")]  # fmt: skip
    assert lines[0] == lines[1]
    assert f"cannot read image {Path('imgs/train/dog/1.png')}" in lines[0] and "replace or delete" in lines[0]


# -- output folders -----------------------------------------------------------------------------
@pytest.mark.parametrize("command", [FIT, ("lr-find", "digits")])
def test_an_out_folder_that_cannot_be_written_fails_before_training(run_learnloop, tmp_path, command):
    (tmp_path / "a_file").write_text("x")
    result = run_learnloop(*command, "--out", "a_file/run")
    assert "--out cannot write to 'a_file/run' (Not a directory)" in error_line(result)
    assert "train_loss" not in result.stdout and "suggested" not in result.stdout


def test_a_finished_run_is_never_overwritten_by_accident(run_learnloop, run_copy):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    line = error_line(run_learnloop(*FIT, "--out", run_copy))
    assert f"{run_copy} already holds a run (model.pt, last.ckpt, history.csv)" in line
    assert "--resume" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
    (run_copy / "stale.txt").write_text("not learnloop's: kept")
    result = run_learnloop(*FIT, "--bs", "64", "--out", run_copy, "--overwrite")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(run_copy / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0"] and (run_copy / "stale.txt").is_file()
    assert load_checkpoint(run_copy / "last.ckpt")["meta"]["bs"] == 64  # the new run's, not the old one's
    assert (run_copy / "model.pt").read_bytes() != before["model.pt"]


def test_resume_needs_a_checkpoint_and_excludes_overwrite(capsys, run_copy, tmp_path):
    line = main_error(capsys, *FIT, "--out", str(tmp_path / "fresh"), "--resume")
    assert f"there is no checkpoint {tmp_path / 'fresh' / 'last.ckpt'} to continue from" in line
    assert "pass one of them" in main_error(capsys, *FIT, "--out", str(run_copy), "--resume", "--overwrite")


# -- checkpoints --------------------------------------------------------------------------------
_TRUNCATED = "is not a readable checkpoint: it is truncated, or not a file torch.save wrote"


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[: len(b) // 2], _TRUNCATED),
    (lambda b: os.urandom(len(b)), _TRUNCATED),
])  # fmt: skip
def test_an_unreadable_checkpoint_is_named_in_one_line(run_learnloop, run_copy, damage, says):
    ckpt = run_copy / "last.ckpt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    result = run_learnloop(*FIT, "--bs", "128", "--out", run_copy, "--resume")
    assert error_line(result).startswith(f"learnloop: error: {ckpt} {says}")
    assert "weights_only" not in result.stderr


def test_empty_and_foreign_checkpoints_are_named(capsys, run_copy):
    ckpt, args = run_copy / "last.ckpt", (*FIT, "--bs", "128", "--out", str(run_copy), "--resume")
    shutil.copy(run_copy / "model.pt", ckpt)  # learn.save's file, not a Checkpoint's
    assert f"{ckpt} is not a learnloop training checkpoint (version None" in main_error(capsys, *args)
    torch.save(torch.zeros(3), ckpt)
    assert f"{ckpt} holds a Tensor, not a checkpoint dict" in main_error(capsys, *args)
    ckpt.write_bytes(b"")
    assert f"{ckpt} is not a readable checkpoint: it is empty" in main_error(capsys, *args)


def test_resume_refuses_another_model_or_batch_size(run_learnloop, run_copy):
    line = error_line(run_learnloop(*FIT, "--bs", "64", "--arch", "bn_cnn", "--out", run_copy, "--resume"))
    assert "these differ: arch 'bn_cnn' (saved: 'simple_cnn'); bs 64 (saved: 128)" in line  # OUT/config.json's
    (run_copy / "config.json").unlink()  # a run without one: the checkpoint's own record still refuses
    line = error_line(run_learnloop(*FIT, "--bs", "64", "--arch", "bn_cnn", "--out", run_copy, "--resume"))
    assert "was written by a run with arch='simple_cnn', bs=128, but this run has arch='bn_cnn', bs=64" in line
    assert "can't be resumed exactly" in line


def test_resume_refuses_other_data(capsys, run_copy, tmp_path):
    image_folder(tmp_path / "imgs", ["cat", "dog"], ["cat", "dog"])
    (run_copy / "config.json").unlink()  # the checkpoint's record of its data, as in a run saved without one
    line = main_error(capsys, "fit", str(tmp_path / "imgs"), "--bs", "128", "--arch", "simple_cnn",
                      "--out", str(run_copy), "--resume")  # the run's arch: only the data differs
    assert f"with dataset='digits', but this run has dataset='{(tmp_path / 'imgs').resolve()}':" in line


def test_resume_warns_on_another_torch_version_and_more_epochs_then_trains(run_learnloop, run_copy):
    state = load_checkpoint(run_copy / "last.ckpt")
    assert {k: state["meta"][k] for k in ("dataset", "arch", "bs", "seed")} == {
        "dataset": "digits", "arch": "simple_cnn", "bs": 128, "seed": 0}
    assert state["meta"]["torch"] == str(torch.__version__) and state["meta"]["learnloop"]
    state["meta"]["torch"] = "2.0.0"
    atomic_save(state, run_copy / "last.ckpt")
    result = run_learnloop(*FIT, "--epochs", "2", "--bs", "128", "--out", run_copy, "--resume")
    assert result.returncode == 0, result.stderr
    assert "learnloop: resuming" in result.stdout and "at epoch 1, batch 0/12" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line]
    assert all(line.startswith("learnloop: warning: ") for line in warnings), result.stderr
    assert any("torch='2.0.0', this run uses torch=" in line for line in warnings)
    assert any("comes from a fit of 1 epochs, this one has 2" in line for line in warnings)
    assert [r["epoch"] for r in csv.DictReader(open(run_copy / "history.csv"))] == ["0", "1"]


# -- --debug ------------------------------------------------------------------------------------
def test_debug_shows_the_traceback(run_learnloop):
    result = run_learnloop(*FIT, "--device", "cuda:99", "--debug")
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
    assert "learnloop.errors.SettingError: --device cuda:99" in result.stderr


def test_learnloop_debug_env_raises_user_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNLOOP_DEBUG", "1")
    with pytest.raises(UserError, match="unknown dataset 'nothing'"):
        main(["fit", "nothing", "--out", str(tmp_path / "o")])


def test_an_internal_error_keeps_its_traceback(monkeypatch, tmp_path):
    from learnloop.cli import build

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in learnloop")

    monkeypatch.setattr(build, "make_model", broken)
    with pytest.raises(RuntimeError, match="a bug in learnloop"):
        main([*FIT, "--out", str(tmp_path / "o")])


def test_a_closed_output_pipe_stops_with_one_line(learnloop_cmd, tmp_path):
    # `learnloop fit ... | head -2`: once head exits, stdout's writes fail; stop as a Unix tool does, no traceback
    proc = subprocess.Popen([*learnloop_cmd, "fit", "digits", "--epochs", "3", "--out", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and first.startswith("learnloop: training simple_cnn")
    assert err == "learnloop: stopped: standard output was closed (the reader of its pipe ended).\n"


def test_a_wrong_data_path_says_what_it_is_and_leaves_no_empty_out(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "unknown dataset 'photos': no such folder" in main_error(capsys, "fit", "photos")
    (tmp_path / "cat.jpg").write_bytes(b"")
    assert "'cat.jpg' is a file: pass the image folder that holds train/ and val/" in main_error(
        capsys, "fit", "cat.jpg", "--out", "mine")
    assert not (tmp_path / "runs" / "photos").exists() and not (tmp_path / "mine").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before is the user's: left alone
    main_error(capsys, "fit", "photos", "--out", "kept")
    assert (tmp_path / "kept").is_dir()
