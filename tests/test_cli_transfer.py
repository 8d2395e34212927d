"""`learnloop fit DATA --from RUN` and torchvision/timm `--arch` names, run as a user runs them: the earlier run's
body under a new head, trained with fine_tune; one-line errors for a run that can't be started from."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

GENERATOR = Path(__file__).resolve().parents[1] / "benchmarks" / "fine_tune.py"


def last_row(run: Path) -> dict:
    return list(csv.DictReader(open(run / "history.csv")))[-1]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A 1-epoch `learnloop fit digits` run (simple_cnn on 8x8 arrays)."""
    from learnloop.cli import main

    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["fit", "digits", "--epochs", "1", "--out", str(out), "--no-tensorboard"]) == 0
    return out


def test_fit_from_a_run_fine_tunes_its_body_under_a_new_head(run_learnloop, digits_run, tmp_path):
    result = run_learnloop("fit", "digits", "--from", digits_run, "--epochs", "3", "--out", "tuned", "--no-tensorboard")
    assert result.returncode == 0, result.stderr
    assert f"fine-tuning simple_cnn from {digits_run / 'model.pt'}" in result.stdout and "1 frozen" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "tuned" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]  # one run: the frozen epoch, then two unfrozen
    assert float(rows[-1]["valid_accuracy"]) > float(last_row(digits_run)["valid_accuracy"])
    earlier = torch.load(digits_run / "model.pt", weights_only=True)
    tuned = torch.load(tmp_path / "tuned" / "model.pt", weights_only=True)
    assert tuned["arch"]["name"] == "simple_cnn" and tuned["classes"] == earlier["classes"]
    assert not torch.equal(tuned["model"]["0.w"], earlier["model"]["0.w"])  # the body trained on


@pytest.mark.parametrize("flags, message", [
    (["--arch", "bn_cnn"], "is a simple_cnn run and this run asks for --arch bn_cnn"),
    (["--epochs", "1"], "--freeze-epochs 1 leaves none of the 1 epochs"),
])
def test_fit_from_a_run_that_does_not_fit_is_one_line(run_learnloop, digits_run, flags, message):
    result = run_learnloop("fit", "digits", "--from", digits_run, *flags, "--out", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_fit_a_folder_from_a_digits_run_names_the_input_kind(run_learnloop, digits_run, make_photo_folder, tmp_path):
    result = run_learnloop("fit", make_photo_folder(n_per_class=4, n_valid=2), "--from", digits_run, "--out", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "was trained on arrays (digits or mnist) and this data is images" in result.stderr
    missing = run_learnloop("fit", "digits", "--from", tmp_path / "nowhere", "--out", "x")
    assert missing.returncode == 2 and "there is no model file" in missing.stderr


def test_torchvision_names_without_torchvision_say_how_to_install(run_learnloop):
    # torchvision and timm are not installed beside the CPU torch here (pip would swap torch for a CUDA build)
    if importlib.util.find_spec("torchvision") or importlib.util.find_spec("timm"):
        pytest.skip("torchvision or timm is installed: the resnet18 below would be built")
    result = run_learnloop("fit", "digits", "--arch", "resnet18", "--out", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "pip install torchvision --index-url" in result.stderr and "pip install timm" in result.stderr
    result = run_learnloop("fit", "digits", "--pretrained", "--out", "x")
    assert result.returncode == 2 and "simple_cnn is learnloop's own" in result.stderr


@pytest.mark.slow
def test_fit_from_an_earlier_run_beats_scratch_on_a_small_folder_of_photos(run_learnloop, tmp_path):
    # benchmarks/fine_tune.py's setting, smaller: digit photos of classes 0-4 for the earlier run; classes 5-9, 40
    # training photos a class, 4 epochs at 32 px for the small folder. Scratch sits near chance (20%).
    spec = importlib.util.spec_from_file_location("fine_tune_bench", GENERATOR)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    source = bench.write_folder(tmp_path / "source", range(0, 5), 300, 20, seed=0)
    small = bench.write_folder(tmp_path / "small", range(5, 10), 40, 20, seed=100)
    common = ["--size", "32", "--no-flip", "--no-tensorboard"]
    earlier = run_learnloop("fit", source, "--epochs", "8", "--bs", "32", "--out", "earlier", *common)  # recipe's lr
    assert earlier.returncode == 0 and float(last_row(tmp_path / "earlier")["valid_accuracy"]) > 0.8
    small_folder = [*common, "--bs", "8", "--lr", "1e-2", "--epochs", "4"]  # bs 32 would be 7 steps an epoch
    scratch = run_learnloop("fit", small, "--out", "scratch", *small_folder)
    tuned = run_learnloop("fit", small, "--from", tmp_path / "earlier", "--out", "tuned", *small_folder)
    assert scratch.returncode == 0 and tuned.returncode == 0, tuned.stderr
    from_scratch = float(last_row(tmp_path / "scratch")["valid_accuracy"])
    from_run = float(last_row(tmp_path / "tuned")["valid_accuracy"])
    assert from_run > from_scratch + 0.15, (from_scratch, from_run)
