"""Metrics: function metrics averaged over batches, torchmetrics objects computed per epoch, and column names."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from sklearn.metrics import f1_score
from torchmetrics import MeanSquaredError
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from learnloop import Learner
from learnloop.metrics import accuracy, metric_list, metric_name, snake_case, top_k_accuracy


def test_column_names():
    assert snake_case("MulticlassF1Score") == "multiclass_f1_score" and snake_case("MulticlassAUROC") == "multiclass_auroc"
    assert metric_name(MulticlassF1Score(num_classes=3)) == "multiclass_f1_score"
    assert metric_name(MeanSquaredError()) == "mean_squared_error"
    assert metric_name(partial(top_k_accuracy(3))) == "top_3_accuracy"  # a partial: the wrapped function's name
    assert metric_name(accuracy) == "accuracy" and metric_name(("f1", accuracy)) == "f1"

    class Scored:
        name = "my_score"

        def __call__(self, preds, targets):
            return preds.sum()

    assert metric_name(Scored()) == "my_score"
    assert metric_list({"acc": accuracy}) == [("acc", accuracy)] and metric_list(None) == []


def test_torchmetrics_f1_is_the_epochs_f1_and_is_reset_every_epoch(make_dls, make_mlp):
    # bs 16 over 359 valid samples: many batches, so the mean of per-batch F1s differs from the epoch's F1
    f1 = MulticlassF1Score(num_classes=10, average="macro")
    learn = Learner(make_mlp(), make_dls(bs=8), lr=0.05, metrics=[f1, accuracy, ("acc", MulticlassAccuracy(10, average="micro"))],
                    progress=False)
    learn.fit(3)
    assert list(learn.history[-1]) == ["epoch", "train_loss", "valid_loss", "valid_multiclass_f1_score",
                                       "valid_accuracy", "valid_acc", "lr", "time"]
    outputs, targets = learn.get_preds()
    expected = f1_score(targets.numpy(), outputs.argmax(1).numpy(), average="macro")
    assert learn.history[-1]["valid_multiclass_f1_score"] == pytest.approx(expected, abs=1e-6)
    assert learn.validate()["multiclass_f1_score"] == pytest.approx(expected, abs=1e-6)
    # the mean of per-batch F1s is not the epoch's F1: proof the figure is not averaged over batches
    per_batch = [f1_score(t.numpy(), o.argmax(1).numpy(), average="macro")
                 for o, t in zip(outputs.split(16), targets.split(16))]
    assert abs(sum(per_batch) / len(per_batch) - expected) > 1e-3
    n_valid_batches = len(learn.dls.valid)
    assert f1._update_count == n_valid_batches  # reset before each phase, not growing across epochs
    assert learn.history[-1]["valid_acc"] == pytest.approx(learn.history[-1]["valid_accuracy"], abs=1e-6)
    assert learn.history[-1]["valid_multiclass_f1_score"] > 0.8
    assert all(type(v) is float for k, v in learn.history[-1].items() if k.startswith("valid_"))  # plain numbers


def test_a_stateful_metric_that_fails_names_itself(make_dls, make_mlp):
    bad = MulticlassF1Score(num_classes=3)  # the model has 10 outputs
    with pytest.raises(RuntimeError, match=r"metric 'multiclass_f1_score'.update\(\) raised on preds of shape"):
        Learner(make_mlp(), make_dls(), metrics=[bad], progress=False).fit(1)
    per_class = MulticlassF1Score(num_classes=10, average=None)
    with pytest.raises(ValueError, match="average='macro'"):
        Learner(make_mlp(), make_dls(), metrics=[per_class], progress=False).fit(1)


def test_any_object_with_update_compute_reset_is_a_stateful_metric(make_dls, make_mlp):
    class Count:
        def __init__(self):
            self.n, self.resets = 0, 0

        def update(self, preds, targets):
            self.n += len(targets)

        def compute(self):
            return torch.tensor(float(self.n))

        def reset(self):
            self.n, self.resets = 0, self.resets + 1

    count = Count()
    learn = Learner(make_mlp(), make_dls(), metrics={"n_valid": count}, progress=False)
    learn.fit(2)
    assert [row["valid_n_valid"] for row in learn.history] == [len(learn.dls.valid.dataset)] * 2
    assert count.resets == 2
