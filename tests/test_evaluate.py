"""`learnloop.evaluate`: a trained model on a labelled folder, figures checked against scikit-learn's."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from learnloop import Learner, load_learner
from learnloop.data.datasets import image_folder_dls
from learnloop.errors import DataError
from learnloop.evaluate import evaluate, format_report, write_report
from learnloop.metrics import accuracy
from learnloop.nn import image_cnn
from learnloop.optim import AdamW


@pytest.fixture
def trained(photo_folder, tmp_path):
    """(learner as trained, the same loaded from its model file) on the photo folder."""
    torch.manual_seed(0)
    dls = image_folder_dls(photo_folder, size=32, bs=4, augment=False, seed=0)
    learn = Learner(image_cnn(3, 3, widths=(8, 16)), dls, metrics=[accuracy], opt_func=AdamW, progress=False)
    learn.fit_one_cycle(2, 3e-3)
    return learn, load_learner(learn.export(tmp_path / "model.pt"))


def test_evaluate_on_the_runs_own_valid_folder_equals_its_validation(trained, photo_folder, tmp_path):
    learn, loaded = trained
    report = evaluate(loaded, photo_folder)  # a root holding val/
    assert report["folder"] == str(photo_folder / "val") and report["n"] == 6
    assert report["accuracy"] == learn.history[-1]["valid_accuracy"]  # exactly: the same batches, the same sums
    predicted = report["preds"].argmax(1).numpy()
    precision, recall, _, count = precision_recall_fscore_support(report["targets"].numpy(), predicted,
                                                                  labels=[0, 1, 2], zero_division=0)
    for i, label in enumerate("abc"):
        row = report["classes"][label]
        assert row["count"] == count[i] == 2 and row["recall"] == pytest.approx(recall[i])
        assert row["precision"] == pytest.approx(precision[i]) or (row["precision"] is None and precision[i] == 0)
    assert "precision  recall  count" in format_report(report)
    written = write_report(loaded, report, tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == report["accuracy"] and metrics["n"] == 6 and set(metrics["classes"]) == set("abc")
    for png in written[1:]:
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 200


def test_label_folders_and_test_roots_and_unknown_classes(trained, photo_folder, tmp_path):
    _, loaded = trained
    direct = evaluate(loaded, photo_folder / "val")  # FOLDER/<label>/*
    test_root = tmp_path / "root"
    shutil.copytree(photo_folder / "val", test_root / "test")
    assert evaluate(loaded, test_root)["accuracy"] == direct["accuracy"]
    shutil.copytree(photo_folder / "val" / "a", test_root / "test" / "zebra")
    with pytest.raises(DataError, match=r"class zebra in the folder: the model does not know it \(it knows \['a', 'b'"):
        evaluate(loaded, test_root)
