"""`learnloop fit FOLDER`: the image-folder recipe, run as a user runs it, on a small generated JPEG folder."""

from __future__ import annotations

import csv
import subprocess
import sys

import torch

from learnloop.cli import main


def fit_folder(root, out, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "learnloop", "fit", str(root), "--size", "32", "--bs", "8",
                           "--out", str(out), "--no-tensorboard", *flags], capture_output=True, text=True, timeout=300)


def test_fit_folder_learns_with_the_default_augmentation(make_photo_folder, tmp_path):
    root = make_photo_folder(n_per_class=16, n_valid=4)
    result = fit_folder(root, tmp_path / "run", "--epochs", "5", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "training image_cnn" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert len(rows) == 5 and float(rows[-1]["valid_accuracy"]) >= 0.75  # 3 classes: chance is 1/3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert state["model"]["0.weight"].shape == (32, 3, 3, 3)  # image_cnn on colour images


def test_fit_folder_flags(photo_folder, tmp_path, capsys):
    assert main(["fit", str(photo_folder), "--size", "24", "--bs", "6", "--epochs", "1", "--no-augment",
                 "--out", str(tmp_path / "plain"), "--no-tensorboard"]) == 0
    assert main(["fit", str(photo_folder), "--size", "24", "--bs", "6", "--epochs", "1", "--no-flip",
                 "--arch", "bn_cnn", "--out", str(tmp_path / "noflip"), "--no-tensorboard"]) == 0
    capsys.readouterr()
    assert main(["fit", "digits", "--augment", "--out", str(tmp_path / "d")]) == 2
    assert "--augment applies to image folders only" in capsys.readouterr().err
    assert main(["fit", "digits", "--no-flip", "--out", str(tmp_path / "d")]) == 2
    assert "--no-flip applies to image folders only" in capsys.readouterr().err
