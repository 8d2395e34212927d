"""What the run trackers (MLflow, W&B) share: what a fit is (`run_params`), and a base callback that buffers the
batch losses, hands out the `learn.history` rows not logged yet, and keeps the run id for a resume."""

from __future__ import annotations

import importlib.util
import numbers
from typing import Any

import torch

from ..distributed import unwrap
from ..metrics import metric_name
from .core import Callback
from .logging import batch_size_of


def run_params(learn: Any) -> dict[str, Any]:
    """What a fit is: lr (the peak under one-cycle), bs, n_epoch, optimizer and its hyper-parameters
    (`opt.momentum`, ...), model, n_params, loss, metrics, schedule (each scheduler with its `settings`), callbacks."""
    from .schedule import ParamScheduler, TorchScheduler

    opt_hps = {f"opt.{name}": values[-1] for name, values in learn.hps.items() if name != "lr"}  # the head group
    scheds = [cb for cb in learn.cbs if isinstance(cb, (ParamScheduler, TorchScheduler))]
    peaks = [cb.settings["lr_max"] for cb in scheds if "lr_max" in cb.settings]
    model = unwrap(learn.model)
    return {
        "lr": peaks[0] if peaks else learn.lr,  # the learner's lr is not what a one-cycle fit uses
        "bs": batch_size_of(learn.dls),
        "n_epoch": learn.n_epoch,
        "optimizer": type(learn.opt).__name__,
        **opt_hps,
        "model": type(model).__name__,
        "n_params": sum(p.numel() for p in model.parameters()),
        "loss_func": metric_name(learn.loss_func),
        "metrics": ", ".join(metric_name(m) for m in learn.metrics) or "none",
        "schedule": ", ".join(_describe_sched(cb) for cb in scheds) or "none",
        "callbacks": ", ".join(type(cb).__name__ for cb in sorted(learn.cbs, key=lambda cb: cb.order)),
    }


def _describe_sched(cb: Callback) -> str:
    settings = ", ".join(f"{k}={v:g}" if is_number(v) else f"{k}={v}" for k, v in cb.settings.items())
    return f"{type(cb).__name__}({settings})"


def is_number(value: Any) -> bool:
    """A real number, not a bool: what trackers log as a metric."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class TrackerCallback(Callback):
    """The base of a run tracker: with `log_every_n_batches=n` the training loss of every n-th batch is kept on the
    device and read once per epoch (`take_batch_losses`); `take_new_rows` gives the history rows not logged yet; the
    run id is its state (`state_dict`), so a fit resumed from a checkpoint logs to the same run."""

    order = 70  # after the Recorder (50): history[-1] is the epoch that just ended; before Checkpoint (90)
    main_only = True  # rank 0 alone talks to the tracker under torchrun
    during_lr_find = False  # lr_find's trial fit is not a run

    def __init__(self, log_every_n_batches: int | None, package: str, missing: str):
        if log_every_n_batches is not None and (not isinstance(log_every_n_batches, int) or log_every_n_batches < 1):
            raise ValueError(f"log_every_n_batches must be a positive int or None, got {log_every_n_batches!r}.")
        if importlib.util.find_spec(package) is None:
            raise ImportError(missing)
        self.log_every_n_batches, self.package = log_every_n_batches, package
        self.run_id: str | None = None  # the run this fit logs to; saved in checkpoints by `state_dict`

    @property
    def name(self) -> str:
        """The tracker's package name (`learn.mlflow`, `learn.wandb`): its attribute and its checkpoint state's key."""
        return self.package

    def before_fit(self):
        self.run_id, self._batch_losses, self.n_logged = None, [], 0
        # The run starts at the first epoch: a resumed fit's `Resume` (after every before_fit) sets `run_id`.

    def after_batch(self):
        n = self.log_every_n_batches
        if n is not None and self.training and self.train_iter % n == 0:  # train_iter: batches before this one
            self._batch_losses.append((self.train_iter, self.loss.detach()))  # read off the device once per epoch

    def take_batch_losses(self) -> list[tuple[int, float]]:
        """(train_iter, loss) of the batches kept since the last call, read off the device at once."""
        if not self._batch_losses:
            return []
        losses = torch.stack([loss.float() for _, loss in self._batch_losses]).cpu().tolist()
        taken = [(step, loss) for (step, _), loss in zip(self._batch_losses, losses)]
        self._batch_losses = []
        return taken

    def take_new_rows(self) -> list[dict]:
        """The `learn.history` rows not logged yet (a resumed fit's earlier epochs count as logged)."""
        rows = self.history[self.n_logged:]
        self.n_logged = len(self.history)
        return rows

    def state_dict(self) -> dict:
        """The run id, so a resumed fit logs to the same run."""
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.run_id = state.get("run_id")
