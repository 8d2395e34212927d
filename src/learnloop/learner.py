"""The training loop: a `Learner`, its events, and the exceptions that cancel a phase.

Everything else (recording, progress, schedules, checkpoints, loggers) is a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


class CancelBatchException(Exception):
    """Skip the rest of this batch; `after_cancel_batch` and `after_batch` still run."""


class CancelTrainException(Exception):
    """Skip the rest of this training phase; `after_cancel_train` and `after_train` still run."""


class CancelValidateException(Exception):
    """Skip the rest of this validation phase; `after_cancel_validate` and `after_validate` still run."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch; `after_cancel_epoch` and `after_epoch` still run."""


class CancelFitException(Exception):
    """Stop training; `after_cancel_fit` and `after_fit` still run."""


# Each loop level: (before event, cancel event, after event, the exception that cancels it).
_LEVELS = {
    level: (f"before_{level}", f"after_cancel_{level}", f"after_{level}", exc)
    for level, exc in [
        ("fit", CancelFitException),
        ("epoch", CancelEpochException),
        ("train", CancelTrainException),
        ("validate", CancelValidateException),
        ("batch", CancelBatchException),
    ]
}
_CANCELS = tuple(exc for *_, exc in _LEVELS.values())

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_validate", "before_batch",
    "after_pred", "after_loss", "after_backward", "after_step", "after_batch",
    "after_train", "after_validate", "after_epoch", "after_fit",
    "after_cancel_batch", "after_cancel_train", "after_cancel_validate",
    "after_cancel_epoch", "after_cancel_fit",
)  # fmt: skip

# The callback modules import the exceptions above from here, so these imports come after them.
from .callbacks.checkpoint import Resume  # noqa: E402
from .callbacks.core import Callback, as_callback, warn_unknown_events  # noqa: E402
from .callbacks.interrupt import GracefulInterrupt  # noqa: E402
from .callbacks.metrics import Recorder, metric_name  # noqa: E402
from .callbacks.progress import ProgressCallback  # noqa: E402
from .callbacks.training import TerminateOnNaN  # noqa: E402
from .data import DataLoaders  # noqa: E402
from .diagnose import check_train_loader, explain  # noqa: E402
from .distributed import default_callbacks, default_device, gather_preds, is_main, unwrap  # noqa: E402
from .nn.functional import cross_entropy  # noqa: E402
from .optim import SGD  # noqa: E402
from .saving import atomic_save, load_checkpoint  # noqa: E402


class Learner:
    """Owns the training loop: data -> model -> loss -> optimizer, with callbacks at every step."""

    def __init__(
        self,
        model: Any,
        dls: Any,
        loss_func: Callable = cross_entropy,
        lr: float = 1e-2,
        cbs: Iterable | None = None,
        opt_func: Callable = SGD,
        metrics: Iterable[Callable] | None = None,
        progress: bool = True,
        device: str | torch.device | None = None,
    ):
        self.dls = dls if hasattr(dls, "train") else DataLoaders(dls, None)  # one loader: no validation
        self.device = torch.device(device or default_device())
        self.model = model.to(self.device) or model  # learnloop's Module.to may return None
        self.loss_func, self.opt_func, self.metrics = loss_func, opt_func, list(metrics or [])
        self.opt = opt_func(self.model.parameters(), lr=lr)
        self.history: list[dict] = []
        self.cbs: list[Callback] = []
        self.n_epoch, self.epoch, self.iter, self.n_iter, self.training = 1, 0, 0, 0, False
        self.start_epoch = self.start_iter = 0  # where the next fit starts (set by a resume)
        self.dl = self.xb = self.yb = self.preds = self.loss = self.loss_grad = None
        defaults = [Recorder(), TerminateOnNaN(), GracefulInterrupt()] + ([ProgressCallback()] if progress else [])
        defaults += default_callbacks()
        self.add_cbs(defaults + list(cbs or []))

    @property
    def lr(self) -> float:
        """The optimizer's learning rate (of its first param group)."""
        return self.opt.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = value

    # -- callbacks ---------------------------------------------------------------------------
    def add_cbs(self, cbs: Iterable) -> list[Callback]:
        """Add callbacks (learnloop's or Keras-style objects); return them as learnloop callbacks."""
        added = [as_callback(cb) for cb in cbs]
        for cb in added:
            warn_unknown_events(cb, EVENTS)
            cb.learn = self
            setattr(self, cb.name, cb)
            self.cbs.append(cb)
        self._resolve_dispatch()
        return added

    def remove_cbs(self, cbs: Iterable[Callback]) -> None:
        """Remove callbacks added earlier."""
        for cb in cbs:
            self.cbs.remove(cb)
            if getattr(self, cb.name, None) is cb:
                delattr(self, cb.name)
        self._resolve_dispatch()

    @contextmanager
    def added_cbs(self, cbs: Iterable | None):
        """Add callbacks for the duration of a `with` block."""
        added = self.add_cbs(cbs or [])
        try:
            yield added
        finally:
            self.remove_cbs(added)

    def _resolve_dispatch(self) -> None:
        # Once per change of callbacks, not per batch: a tuple of bound methods per event.
        ordered = sorted(self.cbs, key=lambda cb: cb.order)  # stable: insertion order breaks ties
        ordered = [cb for cb in ordered if not cb.main_only or is_main()]  # under torchrun, I/O on rank 0 only
        self._dispatch = {e: tuple(getattr(cb, e) for cb in ordered if hasattr(type(cb), e)) for e in EVENTS}

    def __call__(self, event: str) -> None:
        """Run `event` on every callback that has it, in order."""
        method = None
        try:
            for method in self._dispatch[event]:
                method()
        except _CANCELS:
            raise
        except Exception as e:
            if method is not None and hasattr(e, "add_note"):
                e.add_note(f"raised in callback {type(method.__self__).__name__}.{event}")
            raise

    # -- the loop ----------------------------------------------------------------------------
    def _with_events(self, level: str, body: Callable[[], None]) -> None:
        before, after_cancel, after, cancel = _LEVELS[level]
        try:
            self(before)
            body()
        except cancel:
            self(after_cancel)
        except BaseException:
            if level == "fit":  # cleanup (loggers, workers, last checkpoint) even on errors and Ctrl-C
                self(after)
            raise
        self(after)

    def one_batch(self) -> None:
        """Forward, loss, and when training backward, step and zero_grad."""
        try:  # free until it raises; then `explain` names the usual mistakes (diagnose.py)
            self.preds = self.model(self.xb)
        except Exception as e:
            raise explain(e, self, "forward")
        self("after_pred")
        try:
            self.loss = self.loss_grad = self.loss_func(self.preds, self.yb)
        except Exception as e:
            raise explain(e, self, "loss")
        self("after_loss")
        if not self.training:
            return
        self.loss_grad.backward()
        self("after_backward")
        self.opt.step()
        self("after_step")
        self.opt.zero_grad(set_to_none=True)

    def _all_batches(self) -> None:
        self.n_iter = len(self.dl)
        for self.iter, batch in enumerate(self.dl, self.start_iter):
            self.xb, self.yb = self._to_device(batch)
            self._with_events("batch", self.one_batch)
        self.start_iter = 0

    def one_epoch(self, training: bool) -> None:
        """One pass over the train (or valid) loader."""
        self.training, self.dl = training, self.dls.train if training else self.dls.valid
        self.model.train(training)
        with torch.set_grad_enabled(training):
            self._with_events("train" if training else "validate", self._all_batches)

    def _do_epoch(self) -> None:
        self.one_epoch(True)
        if self.dls.valid is not None:
            self.one_epoch(False)

    def _do_fit(self) -> None:
        check_train_loader(self.dls.train)  # after before_fit: a callback's own setup error comes first
        for self.epoch in range(self.start_epoch, self.n_epoch):
            self._with_events("epoch", self._do_epoch)

    def fit(self, n_epoch: int, lr: float | None = None, cbs: Iterable | None = None,
            resume: str | Path | None = None) -> None:
        """Train for `n_epoch` epochs; `cbs` are added for this fit only; `resume`: continue from a `Checkpoint` file."""
        if not isinstance(n_epoch, int) or n_epoch < 1:
            raise ValueError(f"n_epoch must be a positive int, got {n_epoch!r}: pass e.g. fit(5).")
        if lr is not None:
            self.lr = lr
        self.n_epoch, self.start_epoch, self.start_iter = n_epoch, 0, 0
        if resume is not None:  # restores the saved state after every other before_fit
            cbs = [*(cbs or []), Resume(resume)]
        with self.added_cbs(cbs):
            self._with_events("fit", self._do_fit)

    def fit_one_cycle(self, n_epoch: int, lr_max: float | None = None, pct_start: float = 0.25,
                      div: float = 10, div_final: float = 1e5, cbs: Iterable | None = None,
                      resume: str | Path | None = None) -> None:
        """`fit` with the one-cycle schedule (`callbacks.schedule.OneCycle`); `lr_max` defaults to `self.lr`."""
        from .callbacks.schedule import OneCycle

        lr_max = self.lr if lr_max is None else lr_max
        self.fit(n_epoch, cbs=[OneCycle(lr_max, pct_start, div, div_final), *(cbs or [])], resume=resume)

    def lr_find(self, start_lr: float = 1e-6, mult: float = 1.2, max_lr: float = 10, max_iter: int = 90) -> Any:
        """LR range test (`callbacks.schedule.lr_find`); leaves the learner as it was; an `LRFindResult`."""
        from .callbacks.schedule import lr_find

        return lr_find(self, start_lr, mult, max_lr, max_iter)

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch
        return [t.to(self.device, non_blocking=True) if hasattr(t, "to") else t for t in batch]

    # -- evaluation --------------------------------------------------------------------------
    @contextmanager
    def _evaluating(self):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def get_preds(self, dl: Iterable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's outputs and the targets over a loader (the valid loader by default)."""
        dl = self.dls.valid if dl is None else dl
        if dl is None:
            raise ValueError("There is no valid loader: pass one, e.g. learn.validate(test_dl).")
        preds, targets = [], []
        with self._evaluating():
            for batch in dl:
                xb, yb = self._to_device(batch)
                preds.append(self.model(xb))
                targets.append(yb)
        return gather_preds(dl, torch.cat(preds), torch.cat(targets))  # DDP: all ranks' shards, in order

    def validate(self, dl: Iterable | None = None) -> dict[str, float]:
        """Loss and metrics over a loader (the valid loader by default), weighted by batch size."""
        preds, targets = self.get_preds(dl)
        results = {"loss": float(self.loss_func(preds, targets))}
        for metric in self.metrics:
            results[metric_name(metric)] = float(metric(preds, targets))
        return results

    def predict(self, x: Any) -> torch.Tensor:
        """The model's output for one sample (no batch dimension in or out)."""
        with self._evaluating():
            return self.model(torch.as_tensor(x).unsqueeze(0).to(self.device))[0]

    # -- saving ------------------------------------------------------------------------------
    def save(self, path: str | Path, with_opt: bool = True) -> Path:
        """Save the model's (and optimizer's) state to `path`, atomically; under torchrun rank 0 alone writes."""
        if not is_main():
            return Path(path)
        state = {"model": unwrap(self.model).state_dict()}
        if with_opt:
            state["opt"] = self.opt.state_dict()
        return atomic_save(state, path)

    def load(self, path: str | Path, with_opt: bool = True) -> "Learner":
        """Load what `save` wrote: the model (and optimizer) state."""
        state = load_checkpoint(path)
        unwrap(self.model).load_state_dict(state["model"])
        if with_opt and "opt" in state:
            self.opt.load_state_dict(state["opt"])
        return self
