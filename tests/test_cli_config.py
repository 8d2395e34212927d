"""One typed config per run: DATA's recipe with the flags over it, printed by --print-config, saved as
OUT/config.json and used by --resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from learnloop.cli import main
from learnloop.cli.config import RECIPES, RunConfig

FIT = ("fit", "digits", "--no-tensorboard")


def printed_config(capsys, *argv: str) -> dict:
    assert main([*argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_recipe_setting_is_a_config_field():
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for recipe in RECIPES.values():
        assert set(recipe) <= names


def test_flags_override_the_recipe_and_print_config_shows_the_result(capsys, tmp_path):
    mnist = printed_config(capsys, "fit", "mnist", "--out", str(tmp_path / "m"))
    assert mnist == {**dataclasses.asdict(RunConfig()), **RECIPES["mnist"], "dataset": "mnist"}
    assert (mnist["momentum"], mnist["nesterov"], mnist["wd"], mnist["channels_last"]) == (0.9, True, 5e-4, True)
    flags = ("--opt", "adamw", "--wd", "0.05", "--label-smoothing", "0", "--no-channels-last", "--bs", "64")
    changed = printed_config(capsys, "fit", "mnist", *flags, "--out", str(tmp_path / "m"))
    assert changed == {**mnist, "opt": "adamw", "wd": 0.05, "label_smoothing": 0.0, "channels_last": False, "bs": 64}
    assert not (tmp_path / "m").exists()  # printed, nothing run or written


def test_print_config_of_a_folder_names_it_from_anywhere(photo_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(photo_folder.parent)
    config = printed_config(capsys, "lr-find", photo_folder.name, "--size", "24", "--out", str(tmp_path / "o"))
    assert config["dataset"] == str(photo_folder.resolve()) and config["size"] == 24
    assert (config["opt"], config["augment"], config["arch"]) == ("adamw", True, "image_cnn")


def test_fit_saves_its_config_and_the_run_uses_it(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*FIT, "--epochs", "1", "--opt", "adamw", "--wd", "0.05", "--lr", "0.01", "--out", str(out)]
    expected = printed_config(capsys, *argv)
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text()) == expected
    assert RunConfig.load(out / "config.json") == RunConfig(**expected)
    group = torch.load(out / "model.pt", weights_only=True)["opt"]["param_groups"][0]
    assert group["wd"] == 0.05 and "betas" in group  # the optimizer the config names, with its weight decay


def test_resume_continues_with_the_saved_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FIT, "--epochs", "2", "--bs", "16", "--lr", "0.3", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    capsys.readouterr()
    # the flags that change where the run goes and what it reports may differ; the rest come from config.json
    again = ["fit", "digits", "--resume", "--log-every", "5", "--out", str(out)]
    assert printed_config(capsys, *again) == {**saved, "log_every": 5.0}
    assert main(again) == 0
    printed = capsys.readouterr().out
    assert "training simple_cnn on digits for 2 epochs (bs 16, lr 0.3, onecycle schedule" in printed
    assert f"resuming {out / 'last.ckpt'} at epoch 2, batch 0/" in printed  # bs 16, as saved: the checkpoint fits
    assert json.loads((out / "config.json").read_text()) == {**saved, "log_every": 5.0}


def test_resume_with_a_setting_that_differs_says_which(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FIT, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["fit", "digits", "--resume", "--lr", "0.1", "--bs", "32", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "learnloop: error: --resume continues a run with the settings it was started with" in err
    assert "lr 0.1 (saved: 0.5)" in err and "bs" not in err.split("differ:")[1].split(".")[0]  # bs 32 is as saved
    assert main(["fit", "mnist", "--resume", "--out", str(out)]) == 2
    assert "DATA 'mnist' (saved: 'digits')" in capsys.readouterr().err


def test_a_config_json_that_is_not_one_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FIT, "--epochs", "1", "--out", str(out)]) == 0
    (out / "config.json").write_text(json.dumps({"lr": 0.1, "learning_rate": 0.2}))
    capsys.readouterr()
    assert main(["fit", "digits", "--resume", "--out", str(out)]) == 2
    assert "is not a learnloop run config (unknown settings learning_rate)" in capsys.readouterr().err
    (out / "config.json").write_text("{")
    assert main(["fit", "digits", "--resume", "--out", str(out)]) == 2
    assert f"can't read the run's settings {out / 'config.json'}" in capsys.readouterr().err


def test_config_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = RunConfig(lr=0.2).save(tmp_path / "config.json")
    assert RunConfig.load(path) == RunConfig(lr=0.2) and [p.name for p in tmp_path.iterdir()] == ["config.json"]
