"""OptunaPruning in a real optuna study: a trial that should be pruned stops its fit and is marked PRUNED."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from learnloop import Callback, Learner  # noqa: E402
from learnloop.callbacks import OptunaPruning  # noqa: E402
from learnloop.data import DataLoaders  # noqa: E402
from learnloop.data.datasets import digits  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402


class Ended(Callback):
    order = 90  # before OptunaPruning's after_fit (100), which raises TrialPruned

    def after_fit(self):
        self.ran = True


def test_a_pruned_trial_stops_its_fit_and_the_study_marks_it_pruned(make_mlp):
    learners, ended = {}, {}

    def objective(trial) -> float:
        lr = trial.suggest_categorical("lr", [0.5, 1e-4])
        learn = Learner(make_mlp(0), DataLoaders.from_dsets(*digits(), bs=128, seed=0), lr=lr, metrics=[accuracy],
                        progress=False)
        learners[lr], ended[lr] = learn, Ended()
        learn.fit(4, cbs=[OptunaPruning(trial, monitor="valid_accuracy"), ended[lr]])
        return learn.history[-1]["valid_accuracy"]

    # prune a trial whose accuracy is still under 50% after its first epoch
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5),
                                sampler=optuna.samplers.GridSampler({"lr": [0.5, 1e-4]}, seed=0))
    study.optimize(objective, n_trials=2)
    states = {t.params["lr"]: t.state for t in study.trials}
    assert states == {0.5: TrialState.COMPLETE, 1e-4: TrialState.PRUNED}
    pruned = next(t for t in study.trials if t.state == TrialState.PRUNED)
    slow = learners[1e-4]
    assert len(slow.history) == 1 and pruned.intermediate_values == {0: slow.history[0]["valid_accuracy"]}
    assert ended[1e-4].ran  # the fit ended cleanly: after_fit ran before TrialPruned
    assert study.best_trial.params == {"lr": 0.5} and study.best_value > 0.85
    assert len(learners[0.5].history) == 4
    assert study.best_trial.intermediate_values == {r["epoch"]: r["valid_accuracy"] for r in learners[0.5].history}


def test_an_unknown_monitor_names_the_columns(make_mlp):
    trial = optuna.create_study().ask()
    learn = Learner(make_mlp(0), DataLoaders.from_dsets(*digits(), bs=256, seed=0), progress=False)
    with pytest.raises(KeyError, match=r"monitor='valid_acc'.*it has train_loss, valid_loss, lr"):
        learn.fit(1, cbs=[OptunaPruning(trial, monitor="valid_acc")])
