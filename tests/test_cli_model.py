"""`learnloop predict`, `evaluate` and `export`, run as a user runs them: a photo run trained by `learnloop fit`,
its model.pt copied alone into another folder, the commands in subprocesses."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from learnloop import load_learner

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_alone(module_photo_folder, learnloop_cmd, tmp_path_factory):
    """(model.pt of a 2-epoch `learnloop fit` on the photo folder, copied alone into a folder; the run's history)."""
    import os
    import subprocess

    run = tmp_path_factory.mktemp("fit") / "run"
    result = subprocess.run([*learnloop_cmd, "fit", str(module_photo_folder), "--size", "32", "--bs", "4", "--epochs",
                             "2", "--no-augment", "--no-tensorboard", "--out", str(run)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    alone = tmp_path_factory.mktemp("alone")
    shutil.copy(run / "model.pt", alone / "model.pt")
    with open(run / "history.csv") as f:
        return alone / "model.pt", list(csv.DictReader(f))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_predict_prints_each_image_and_names_the_unreadable_one(model_alone, module_photo_folder, run_learnloop,
                                                                 tmp_path):
    model, _ = model_alone
    photos = tmp_path / "photos"
    shutil.copytree(module_photo_folder / "val", photos)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / ".hidden.jpg").write_bytes(b"skipped")
    (photos / "notes.txt").write_text("skipped")
    result = run_learnloop("predict", model, photos, "--workers", "2", "--bs", "4")
    assert result.returncode == 1  # the broken file, after all the others
    assert lines(result.stderr)[0].startswith(f"learnloop: cannot read {photos / 'broken.jpg'}: ")
    printed = [line.split("  ") for line in lines(result.stdout)]
    files = sorted(str(p) for p in photos.rglob("*.jpg") if p.name[0] != "." and p.name != "broken.jpg")
    assert [row[0] for row in printed] == files
    learn = load_learner(model)
    for path, label, prob in printed:
        expected = learn.predict(path)
        assert label == expected[0] and float(prob) == pytest.approx(float(expected[2].max()), abs=1e-5)


def test_predict_writes_a_csv_with_the_top_labels(model_alone, module_photo_folder, run_learnloop, tmp_path):
    model, _ = model_alone
    one = module_photo_folder / "val" / "c" / "0.jpg"
    result = run_learnloop("predict", model.parent, one, module_photo_folder / "val" / "a", "--top", "2",
                           "--out", tmp_path / "preds.csv")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "preds.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "label", "prob", "label2", "prob2"] and len(rows) == 3
    assert rows[0]["path"] == str(one)
    probs = load_learner(model).predict(one)[2]
    top = probs.topk(2)
    assert [rows[0]["label"], rows[0]["label2"]] == [["a", "b", "c"][i] for i in top.indices.tolist()]
    assert [float(rows[0]["prob"]), float(rows[0]["prob2"])] == pytest.approx(top.values.tolist(), abs=1e-5)


@pytest.mark.parametrize("what", ["missing", "garbage", "no weights"])
def test_a_missing_or_unreadable_model_is_one_line(what, run_learnloop, tmp_path, module_photo_folder):
    model = tmp_path / "model.pt"
    if what == "garbage":
        model.write_bytes(b"\x00" * 100)
    elif what == "no weights":
        torch.save({"classes": ["a"]}, model)
    result = run_learnloop("predict", model, module_photo_folder / "val")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(lines(result.stderr)) == 1 and lines(result.stderr)[0].startswith("learnloop: error: ")


def test_evaluate_on_the_runs_val_equals_its_last_valid_accuracy(model_alone, module_photo_folder, run_learnloop,
                                                                 tmp_path):
    model, history = model_alone
    result = run_learnloop("evaluate", model, module_photo_folder, "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == float(history[-1]["valid_accuracy"])  # exactly
    assert metrics["n"] == 6 and {c: v["count"] for c, v in metrics["classes"].items()} == {"a": 2, "b": 2, "c": 2}
    assert f"accuracy {metrics['accuracy']:.4f}" in result.stdout and "precision  recall  count" in result.stdout
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 0
    assert (tmp_path / "eval" / "top_losses.png").stat().st_size > 0


def test_evaluate_names_a_class_the_model_does_not_know(model_alone, module_photo_folder, run_learnloop, tmp_path):
    model, _ = model_alone
    shutil.copytree(module_photo_folder / "val", tmp_path / "test")
    shutil.copytree(module_photo_folder / "val" / "a", tmp_path / "test" / "zebra")
    result = run_learnloop("evaluate", model, tmp_path / "test")
    assert result.returncode == 2 and len(lines(result.stderr)) == 1
    assert "class zebra in the folder: the model does not know it" in result.stderr


def test_export_onnx_runs_in_onnxruntime_as_predict(model_alone, module_photo_folder, run_learnloop, tmp_path):
    model, _ = model_alone
    result = run_learnloop("export", model, "--onnx", tmp_path / "model.onnx")
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == ["a", "b", "c"] and json.loads(meta["input_size"]) == [32, 32]
    learn = load_learner(model)
    files = sorted(str(p) for p in (module_photo_folder / "val").rglob("*.jpg"))
    pixels = torch.stack([learn.dls.pipeline.load(f) for f in files]).permute(0, 2, 3, 1).numpy()
    (probs,) = session.run(None, {"pixels": pixels})
    assert np.abs(probs - torch.stack([learn.predict(f)[2] for f in files]).numpy()).max() < 1e-4
