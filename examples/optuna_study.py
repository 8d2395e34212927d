"""An Optuna study over the lr and width of an MLP on digits, with unpromising trials pruned after an epoch.

    python examples/optuna_study.py                # 12 trials of up to 5 epochs, well under a minute on a CPU

`OptunaPruning(trial, monitor="valid_accuracy")` reports each epoch's valid accuracy to the trial; when the study's
pruner (here the median of the earlier trials at the same epoch) says so, the fit stops cleanly and the trial is
marked PRUNED. Needs `pip install "learnloop[optuna]"`.
"""

from __future__ import annotations

import argparse

import optuna
import torch
from torch import nn

from learnloop import Learner
from learnloop.callbacks import OptunaPruning
from learnloop.data import DataLoaders
from learnloop.data.datasets import digits
from learnloop.metrics import accuracy


def objective(trial: optuna.Trial, n_epoch: int) -> float:
    """Train one MLP with the trial's lr and width; its last valid accuracy."""
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    width = trial.suggest_categorical("width", [16, 32, 64])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
    learn = Learner(model, DataLoaders.from_dsets(*digits(), bs=64, seed=0), lr=lr, metrics=[accuracy], progress=False)
    learn.fit(n_epoch, cbs=[OptunaPruning(trial, monitor="valid_accuracy")])
    return learn.history[-1]["valid_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    study.optimize(lambda trial: objective(trial, args.epochs), n_trials=args.trials)
    states = [t.state for t in study.trials]
    print(f"{states.count(optuna.trial.TrialState.COMPLETE)} trials complete, "
          f"{states.count(optuna.trial.TrialState.PRUNED)} pruned")
    print(f"best params: lr {study.best_params['lr']:.3g}, width {study.best_params['width']}")
    print(f"best valid accuracy: {study.best_value:.4f}")


if __name__ == "__main__":
    main()
