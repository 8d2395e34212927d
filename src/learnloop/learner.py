"""The training loop: a `Learner` runs data -> model -> loss -> optimizer and calls its callbacks at every step.

Events, the `Callback` base and the Cancel* exceptions are in `callbacks/core.py`. Everything a fit does beyond
the bare loop (recording, progress, schedules, checkpoints, loggers) is a callback; they read the learner's
progress (`epoch`, `iter`, `train_iter`, `pct_train`) and hyper-parameters (`hps`) and write through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from .callbacks.checkpoint import Resume
from .callbacks.core import LEVELS, Callback
from .callbacks.defaults import default_callbacks
from .callbacks.lr_find import LRFindResult, lr_find
from .callbacks.schedule import FineTune, OneCycle
from .data import as_dataloaders
from .data.batches import batch_keys, split_batch, to_device
from .diagnose import check_train_loader, explain
from .dispatch import CallbackHost
from .distributed import default_device, unwrap
from .inference import predict
from .metrics import Metrics, metric_list
from .model_file import save_model
from .layer_groups import LayerGroups, Splitter
from .nn.functional import cross_entropy
from .optim import SGD, HpValue, group_values, read_hps, set_hp
from .saving import load_weights, save_weights
from .validation import gather_preds, validation_results

__all__ = ["Learner"]


class Learner(CallbackHost):
    """Owns the training loop: data -> model -> loss -> optimizer, with callbacks at every step.

    `add_cbs`, `remove_cbs`, `added_cbs` and `learn(event)`, which runs an event on every callback, come from
    `CallbackHost` (dispatch.py). `default_cbs`: the callbacks every fit has; None means
    `callbacks.defaults.default_callbacks(progress)`, a list replaces them (`[]`: the bare loop).
    """

    def __init__(self, model: Any, dls: Any, loss_func: Callable = cross_entropy, lr: HpValue = 1e-2,
                 cbs: Iterable | None = None, opt_func: Callable = SGD, metrics: Metrics = None,
                 progress: bool = True, device: str | torch.device | None = None,
                 default_cbs: Iterable | None = None, splitter: Splitter | None = None):
        self.dls = as_dataloaders(dls)  # also one loader (no validation), or a (train, valid) pair
        self.device = torch.device(device or default_device())
        self.model = model
        model.to(self.device)  # in place, for torch's and learnloop's modules: the optimizer gets these parameters
        self.loss_func, self.opt_func, self.metrics = loss_func, opt_func, metric_list(metrics)
        self.layer_groups = LayerGroups(self.model, splitter)  # body ... head: one optimizer param group each
        lrs = group_values(lr, len(self.layer_groups))
        groups = self.layer_groups.param_groups()
        self.opt = opt_func(groups if len(groups) > 1 else groups[0]["params"], lr=lrs[-1])
        set_hp(self.opt, "lr", lrs)
        self.hps: dict[str, list[float]] = read_hps(self.opt)  # lr, momentum, wd: one value per param group
        self.history: list[dict] = []
        self.cbs: list[Callback] = []
        # Progress, the one record of it: schedules, checkpoints and loggers all read these.
        self.n_epoch, self.epoch, self.iter, self.n_iter, self.training = 1, 0, 0, 0, False
        self.train_iter, self.n_train_iter = 0, 1  # training batches run in this fit, and in all of it
        self.start_epoch = self.start_iter = 0  # where the next fit starts (set by a resume)
        self.error: BaseException | None = None  # what is ending a phase, during after_cancel_* / after_fit
        self.dl = self.xb = self.yb = self.preds = self.loss = self.loss_grad = None
        defaults = default_callbacks(progress) if default_cbs is None else list(default_cbs)
        self.add_cbs([*defaults, *(cbs or [])])

    @property
    def pct_train(self) -> float:
        """The share of this fit's training batches already run, in [0, 1]: what schedules follow."""
        return self.train_iter / self.n_train_iter

    @property
    def lr(self) -> float:
        """The learning rate (of the last param group: the head, where `slice(hi)` puts `hi`)."""
        return self.hps["lr"][-1]

    @lr.setter
    def lr(self, value: HpValue) -> None:
        self.set_hp("lr", value)

    def set_hp(self, name: str, value: HpValue) -> None:
        """Set hyper-parameter `name` (`lr`, `momentum`, `wd`, ...) on every param group: one value, a `slice`
        over the layer groups, or one value per group."""
        self.hps[name] = set_hp(self.opt, name, value)

    def read_hps(self) -> None:
        """Re-read `hps` from the optimizer, after code that wrote its param groups directly (a torch scheduler)."""
        self.hps.update(read_hps(self.opt))

    # -- the loop ----------------------------------------------------------------------------
    def _with_events(self, level: str, body: Callable[[], Any], cleanup: bool = False) -> bool:
        """`before_<level>`, `body`, `after_<level>`; the level's Cancel exception skips to `after_cancel_<level>`.
        With `cleanup` (the fit), `after_<level>` also runs when `body` raises; `self.error` holds the exception.
        Returns False when the level was cancelled."""
        before, after_cancel, after, cancel = LEVELS[level]
        done = False
        try:
            self(before)
            body()
            done = True
        except cancel as e:
            self.error = e
            self(after_cancel)
            self.error = None
        except BaseException as e:
            if cleanup:  # loggers, workers, the last checkpoint: even on errors and Ctrl-C
                self.error = e
                self(after)
            raise
        self(after)
        return done

    def one_batch(self) -> None:
        """Forward, loss, and when training backward, step and zero_grad (each step skippable on its own)."""
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
        self("before_backward")
        self.loss_grad.backward()
        self("after_backward")
        if self._with_events("step", self.opt.step):  # a CancelStepException keeps the gradients
            self.opt.zero_grad(set_to_none=True)

    def _all_batches(self) -> None:
        self.n_iter, keys = len(self.dl), batch_keys(self.dls)
        for self.iter, batch in enumerate(self.dl, self.start_iter):
            self.xb, self.yb = self._to_device(split_batch(batch, *keys))  # a dict batch: by its keys
            self._with_events("batch", self.one_batch)
            self.train_iter += self.training
        self.start_iter = 0

    def one_epoch(self, training: bool, dl: Iterable | None = None) -> None:
        """One pass over the train loader, or the valid one (or `dl`)."""
        self.training = training
        self.dl = dl if dl is not None else self.dls.train if training else self.dls.valid
        self.model.train(training)
        with torch.set_grad_enabled(training):
            self._with_events("train" if training else "validate", self._all_batches)

    def _do_epoch(self) -> None:
        self.one_epoch(True)
        if self.dls.valid is not None:
            self.one_epoch(False)

    def _do_fit(self) -> None:
        check_train_loader(self.dls.train)  # after before_fit: a callback's own setup error comes first
        n = len(self.dls.train)  # after before_fit: under DDP the loader is sharded by then
        self.n_train_iter, self.train_iter = max(self.n_epoch * n, 1), self.start_epoch * n + self.start_iter
        for self.epoch in range(self.start_epoch, self.n_epoch):
            self._with_events("epoch", self._do_epoch)

    def fit(self, n_epoch: int, lr: HpValue | None = None, cbs: Iterable | None = None,
            resume: str | Path | None = None) -> None:
        """Train for `n_epoch` epochs; `cbs` for this fit only; `resume`: continue from a `Checkpoint` file."""
        if not isinstance(n_epoch, int) or n_epoch < 1:
            raise ValueError(f"n_epoch must be a positive int, got {n_epoch!r}: pass e.g. fit(5).")
        self.read_hps()  # the optimizer's param groups may have been set by hand since the last fit
        if lr is not None:
            self.lr = lr
        self.n_epoch, self.start_epoch, self.start_iter = n_epoch, 0, 0
        if resume is not None:  # restores the saved state after every other before_fit
            cbs = [*(cbs or []), Resume(resume)]
        with self.added_cbs(cbs):
            try:
                self._with_events("fit", self._do_fit, cleanup=True)
            finally:
                self.error = None

    def fit_one_cycle(self, n_epoch: int, lr_max: HpValue | None = None, pct_start: float = 0.25,
                      div: float = 10, div_final: float = 1e5, cbs: Iterable | None = None,
                      resume: str | Path | None = None) -> None:
        """`fit` with the one-cycle schedule (`callbacks.schedule.OneCycle`); `lr_max` defaults to the groups' lrs."""
        self.fit(n_epoch, cbs=[OneCycle(lr_max, pct_start, div, div_final), *(cbs or [])], resume=resume)

    def fine_tune(self, epochs: int, base_lr: HpValue = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
                  pct_start: float = 0.3, div: float = 5.0, train_bn: bool = True, cbs: Iterable | None = None,
                  resume: str | Path | None = None) -> None:
        """fastai's fine_tune as one fit (`callbacks.schedule.FineTune`): `freeze_epochs` one-cycle epochs frozen,
        then `epochs` unfrozen at `slice(base_lr/2/lr_mult, base_lr/2)`."""
        tune = FineTune(epochs, freeze_epochs, base_lr, lr_mult, pct_start, div, train_bn)
        self.fit(freeze_epochs + epochs, cbs=[tune, *(cbs or [])], resume=resume)

    def freeze_to(self, n: int, train_bn: bool = True) -> None:
        """Freeze the first `n` layer groups (`n < 0`: all but the last `-n`); BatchNorm trains unless `train_bn`."""
        self.layer_groups.freeze_to(n, train_bn)

    def freeze(self, train_bn: bool = True) -> None:
        """Train the last layer group (the head) alone."""
        self.freeze_to(-1, train_bn)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    def lr_find(self, start_lr: float = 1e-6, mult: float = 1.2, max_lr: float = 10, max_iter: int = 90
                ) -> LRFindResult:
        """LR range test (`callbacks.lr_find.lr_find`); leaves the learner as it was."""
        return lr_find(self, start_lr, mult, max_lr, max_iter)

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch
        return to_device(batch, self.device)

    # -- evaluation: the loop's validation phase, with the callbacks of the call (validation.py) -----------
    def validate(self, dl: Iterable | None = None, cbs: Iterable | None = None) -> dict[str, float]:
        """Loss and metrics over a loader (the valid loader by default), weighted by batch size."""
        return validation_results(self, dl, cbs)

    def get_preds(self, dl: Iterable | None = None, cbs: Iterable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's outputs and the targets over a loader (the valid loader by default)."""
        return gather_preds(self, dl, cbs)

    def predict(self, item: Any) -> tuple[Any, int, torch.Tensor]:
        """`(label, index, probs)` for one item (a photo's path, PIL image or uint8 HWC array, or a sample as the
        dataset gives it), through the validation pipeline (`inference.predict`)."""
        return predict(self, item)

    # -- saving ------------------------------------------------------------------------------
    def save(self, path: str | Path, with_opt: bool = True, extra: dict[str, Any] | None = None) -> Path:
        """Save the model's (and optimizer's) state, and `extra` (e.g. class names), to `path`, atomically; under
        torchrun rank 0 alone writes."""
        return save_weights(unwrap(self.model), self.opt if with_opt else None, path, extra)

    def export(self, path: str | Path, with_opt: bool = False) -> Path:
        """Write the model file `load_learner` reads: weights, architecture, classes, input pipeline
        (`model_file.py`)."""
        return save_model(self.model, path, self.dls, self.opt if with_opt else None)

    def load(self, path: str | Path, with_opt: bool = True) -> Learner:
        """Load what `save` wrote: the model (and optimizer) state."""
        load_weights(unwrap(self.model), self.opt if with_opt else None, path)
        self.read_hps()
        return self
