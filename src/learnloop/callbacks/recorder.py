"""Results tracking: per-batch losses and hyper-parameters, per-phase means weighted by batch size (one row
per epoch in `learn.history`), stateful metrics computed once per phase, and the predictions `learn.get_preds`
gathers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..data.sharding import shard_of
from ..distributed import all_reduce_sum, gather_preds
from ..metrics import is_stateful, metric_name, unnamed
from .core import Callback

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def batch_size(yb: object) -> int:
    """Number of samples in a batch of targets."""
    return yb.shape[0] if hasattr(yb, "shape") else len(yb)


class Recorder(Callback):
    """Records per-batch loss and lr, and appends one row per epoch to `learn.history`.

    Losses and metric values stay tensors on the device until the end of a phase, so the hot loop
    never waits for the device; each phase is reduced with one `.tolist()`. A stateful metric (a torchmetrics
    `Metric`: `update`/`compute`/`reset`) is moved to the model's device, reset at the start of each validation
    phase, updated every batch and computed once at its end (under DDP torchmetrics syncs it across ranks in
    `compute`); a function metric is averaged over the phase's batches, weighted by batch size.
    """

    order = 50
    during_lr_find = False  # the finder records its own curve; the last fit's records stay

    def __init__(self):
        self.losses: list[float] = []  # per training batch, this fit
        self.hps: dict[str, list[float]] = {}  # each hyper-parameter of the last param group (the head), per training batch
        self.iters: list[int] = []  # len(losses) at the end of each epoch, this fit: where valid points go
        self.valid_results: dict[str, float] = {}  # the last validation phase: loss and metrics
        self.row: dict | None = None

    @property
    def lrs(self) -> list[float]:
        """The lr of every training batch of the last fit."""
        return self.hps.get("lr", [])

    def before_fit(self):
        self.losses, self.iters = [], []
        self.hps = {name: [] for name in self.learn.hps}
        self.row = None
        self._reset_phase()  # a resume then loads the interrupted training phase's records

    def before_epoch(self):
        self.start_time, self.row = time.perf_counter(), {"epoch": self.epoch}

    def _reset_phase(self):
        self._losses, self._sizes = [], []
        metrics = [unnamed(m) for m in self.learn.metrics]
        self._stateful = [m for m in metrics if is_stateful(m)]
        self._functions = [m for m in metrics if not is_stateful(m)]
        self._metric_values = [[] for _ in self._functions]

    def before_validate(self):  # also `learn.validate` outside a fit
        self._reset_phase()
        for metric in self._stateful:
            if isinstance(metric, torch.nn.Module):  # its state follows the model (torchmetrics keeps it there)
                metric.to(self.learn.device)
            metric.reset()

    def after_loss(self):
        learn = self.learn  # read through `learn`: each `self.x` would go through __getattr__, per batch
        self._losses.append(learn.loss.detach())
        self._sizes.append(batch_size(learn.yb))
        if learn.training:
            for name, values in learn.hps.items():
                self.hps.setdefault(name, []).append(values[-1])
            return
        for metric, values in zip(self._functions, self._metric_values):
            values.append(metric_value(metric, learn.preds, learn.yb))
        for metric in self._stateful:
            _checked(metric, "update", metric.update, learn.preds, learn.yb)

    def _means(self) -> list[float]:
        """Reduce this phase's per-batch records to weighted means: [loss, *metrics]; then reset."""
        losses, sizes, metric_values = self._losses, self._sizes, self._metric_values
        self._reset_phase()
        if sizes:
            per_batch = [torch.stack(losses).float()] + [torch.stack(v).float() for v in metric_values if v]
            table = torch.stack(per_batch).cpu()  # one device->host copy per phase
            if self.training:
                self.losses.extend(table[0].tolist())  # this rank's batches (under DDP)
            weights = torch.tensor(sizes, dtype=torch.float32)
            totals = torch.cat([table @ weights, weights.sum().view(1)])  # weighted sums, then the count
        else:  # a rank may have no valid batch under DDP; it still joins the reduction below
            totals = torch.zeros(1 + (0 if self.training else len(metric_values)) + 1)
        if shard_of(self.learn.dl) is not None:  # DDP: one collective per phase, full-dataset figures on every rank
            totals = all_reduce_sum(totals)
        return (totals[:-1] / totals[-1]).tolist() if totals[-1] > 0 else []

    def after_train(self):
        means = self._means()
        self.row["train_loss"] = means[0] if means else float("nan")

    def after_validate(self):
        # every rank computes (torchmetrics syncs the ranks' states in compute); one read per metric per phase
        computed = iter([_scalar(m, _checked(m, "compute", m.compute)).item() for m in self._stateful])
        means = self._means()
        if not means:
            self.valid_results = {}
            return
        averaged = iter(means[1:])
        values = [next(computed) if is_stateful(m) else next(averaged) for m in self.learn.metrics]
        names = ["loss", *(metric_name(m) for m in self.learn.metrics)]
        self.valid_results = dict(zip(names, [means[0], *values]))
        if self.row is not None and self.learn.dl is self.learn.dls.valid:  # the fit's own validation
            self.row.update({f"valid_{name}": value for name, value in self.valid_results.items()})

    def after_epoch(self):
        if self.row is None:  # cancelled before this epoch began
            return
        self.row["lr"] = self.lrs[-1] if self.lrs else self.learn.lr
        self.row["time"] = time.perf_counter() - self.start_time
        self.learn.history.append(self.row)
        self.iters.append(len(self.losses))
        self.row = None

    def state_dict(self) -> dict:
        """Per-batch records and the current epoch's partial sums, for exact resume."""
        hps = {name: list(values) for name, values in self.hps.items()}
        # The phase in progress too, so a resumed epoch's means equal the uninterrupted one's. (The current
        # `row` is not saved: checkpoints are written in training or at an epoch's end, where it holds only
        # the epoch number, which before_epoch rebuilds.)
        d = self.__dict__  # no phase yet before the first fit
        phase = {"_losses": list(d.get("_losses", [])), "_sizes": list(d.get("_sizes", [])),
                 "_metric_values": [list(v) for v in d.get("_metric_values", [])]}
        return {"losses": list(self.losses), "iters": list(self.iters), "hps": hps, **phase}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.losses = list(state["losses"])
        self.iters = list(state.get("iters", []))
        self.hps = {k: list(v) for k, v in state.get("hps", {}).items()}
        if "_losses" in state:  # a checkpoint loads on the CPU: back to the device the losses live on
            device = getattr(self.learn, "device", "cpu")
            self._losses = [t.to(device) for t in state["_losses"]]
            self._sizes = list(state["_sizes"])
            self._metric_values = [[t.to(device) for t in v] for v in state["_metric_values"]]

    def plot_lr(self, path: str | os.PathLike | None = None) -> Figure:
        """The lr of every training batch of the last fit; saves a PNG at `path`; returns the Figure."""
        from ..plots import plot_sched

        return plot_sched({"lr": self.lrs}, path)

    def plot_sched(self, path: str | os.PathLike | None = None) -> Figure:
        """Every hyper-parameter that changed during the last fit (else the lr) per training batch, one panel each."""
        from ..plots import plot_sched

        changed = {name: v for name, v in self.hps.items() if v and min(v) != max(v)}
        return plot_sched(changed or {"lr": self.lrs}, path)

    def plot_loss(self, path: str | os.PathLike | None = None, **kwargs) -> Figure:
        """Train loss per batch (raw and smoothed) and valid loss per epoch; saved as PNG when `path` is given."""
        from ..plots import plot_loss  # matplotlib only when plotting

        return plot_loss(self.learn, path, **kwargs)

    def plot_metrics(self, path: str | os.PathLike | None = None) -> Figure:
        """Losses and each metric per epoch from `learn.history`; saved as PNG when `path` is given."""
        from ..plots import plot_metrics

        return plot_metrics(self.learn, path)


def _checked(metric: Any, what: str, call: Callable, *args: torch.Tensor) -> Any:
    """`call(*args)`, with an error that names the metric (and the shapes it was given)."""
    try:
        return call(*args)
    except Exception as e:
        shapes = f" on preds of shape {tuple(args[0].shape)} and targets of shape {tuple(args[1].shape)}" if args else ""
        step = "" if what == "call" else f".{what}()"
        raise RuntimeError(f"metric {metric_name(metric)!r}{step} raised{shapes}: {e}") from e


def _scalar(metric: Any, value: Any) -> torch.Tensor:
    value = torch.as_tensor(value).detach()
    if value.ndim != 0:
        raise ValueError(
            f"metric {metric_name(metric)!r} returned a tensor of shape {tuple(value.shape)}; a metric must "
            f"give one number (e.g. reduce it with .mean(), or average='macro' for a torchmetrics metric)."
        )
    return value


def metric_value(metric: Callable, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`metric(preds, targets)` as a 0-d tensor (a `(name, metric)` pair calls the metric), with errors that name
    the metric and the shapes."""
    return _scalar(metric, _checked(metric, "call", unnamed(metric), preds, targets))


class GatherPreds(Callback):
    """Collects the model's outputs (float32 whatever the autocast dtype) and the targets of a validation phase (what
    `learn.get_preds` returns); under DDP each rank's shard comes back from every rank, in dataset order."""

    order = 50
    during_lr_find = False

    def before_validate(self):
        self.outputs: list[torch.Tensor] | torch.Tensor = []
        self.targets: list[torch.Tensor] | torch.Tensor = []

    def after_loss(self):
        if not self.learn.training:
            self.outputs.append(self.learn.preds.detach())
            self.targets.append(self.learn.yb)

    def after_validate(self):
        if self.outputs:
            outputs = torch.cat(self.outputs)
            if outputs.is_floating_point() and outputs.dtype != torch.float64:  # bf16/fp16 under autocast
                outputs = outputs.float()
            self.outputs, self.targets = gather_preds(self.learn.dl, outputs, torch.cat(self.targets))
