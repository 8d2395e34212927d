"""Callbacks that change how a batch trains: the non-finite loss guard, gradient clipping, and the fast
paths (mixed precision, channels-last, gradient accumulation, torch.compile)."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import torch

from ..nn.torch_view import to_torch
from .core import Callback, CancelFitException, CancelStepException


class TerminateOnNaN(Callback):
    """Stops the fit at a NaN/inf training loss: on CPU before that batch's step, elsewhere within `check_every` batches.

    On CPU the check reads the loss every batch, which costs no sync, so no step is ever taken with a non-finite
    loss. On an accelerator reading the loss would make the host wait for the device every batch, so the default
    (`check_every=None`: 1 on CPU, 50 elsewhere) folds each loss into a flag on the device and reads that flag
    every `check_every` batches and at the end of each training phase: up to `check_every - 1` steps may then
    have been taken with a bad loss, and the weights may already be non-finite. Pass `check_every=1` for the
    strict check on any device, at the price of one sync per batch. Setting `active = False` lets another guard
    decide instead (a Keras `TerminateOnNaN` does so for its fit, to stop as Keras stops).
    """

    order = 40
    active: bool = True
    during_lr_find = False  # the finder stops at a non-finite loss by itself, without a warning

    def __init__(self, check_every: int | None = None):
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ValueError(f"check_every must be a positive int or None (1 on CPU, 50 elsewhere), got {check_every!r}.")
        self.check_every = check_every
        self._finite, self._first, self._pending, self._every = None, 0, 0, 1

    def before_fit(self):
        self._every = self.check_every or (1 if self.learn.device.type == "cpu" else 50)
        self._pending = 0

    def after_loss(self):
        learn = self.learn  # not `self.x`: delegation through __getattr__ costs, every batch
        if not learn.training or not self.active:
            return
        loss = learn.loss
        if self._every == 1:  # strict: read the loss before the step (a CPU scalar is read without a sync)
            value = loss.item() if loss.ndim == 0 else None
            if value is not None and not math.isfinite(value):
                self._stop(value, f"batch {learn.iter}")
            if value is None and not torch.isfinite(loss).all():
                self._stop("not finite", f"batch {learn.iter}")
            return
        # Deferred: one device-side AND per batch, one read per `_every` batches.
        finite = torch.isfinite(loss.detach()).all()
        if self._pending == 0:
            self._finite, self._first = finite, learn.iter
        else:
            self._finite = self._finite & finite
        self._pending += 1
        if self._pending >= self._every:
            self._check()

    def after_train(self):
        self._check()

    def _check(self) -> None:
        pending, self._pending = self._pending, 0
        if pending and not self._finite.item():
            self._stop("not finite", f"one of batches {self._first}..{self._first + pending - 1} (checked every {self._every} "
                       f"batches, so the weights may already be non-finite)")

    def _stop(self, loss: float | str, where: str) -> None:
        warnings.warn(
            f"Stopping: the training loss is {loss} at epoch {self.epoch}, {where}, lr {self.lr:g}. "
            f"Lower the lr (try learn.lr_find()) or clip gradients.",
            RuntimeWarning,
            stacklevel=3,
        )
        raise CancelFitException()


class GradientClip(Callback):
    """Clips the global gradient norm to `max_norm` before every optimizer step (`torch.nn.utils.clip_grad_norm_`)."""

    def __init__(self, max_norm: float, norm_type: float = 2.0):
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm!r}: e.g. GradientClip(1.0).")
        self.max_norm, self.norm_type = max_norm, norm_type

    def before_step(self):
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm, self.norm_type)


# Fast paths, on the step's own events. In `before_step`, `GradientAccumulation` (order -20) decides whether
# this batch steps before `MixedPrecision` (-10) unscales the gradients, and both come before callbacks of the
# default order 0 (`GradientClip`), which so see the true, accumulated gradients of the batches that step.

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision(Callback):
    """Forward and loss under `torch.autocast` in bf16 or fp16; fp16 scales the loss with a `GradScaler`.

    Autocast is entered in `before_batch` and left in `after_loss`, so backward and the step run outside it;
    `after_batch`, `after_cancel_batch` and `after_fit` leave it too, so a cancelled or failed batch never
    leaks it. With fp16 the loss is scaled in `before_backward`; in `before_step` the gradients are unscaled
    and the scale updated, and a step whose gradients overflowed is skipped (`CancelStepException`, its
    gradients dropped), as `GradScaler.step` would.
    """

    order = -10

    def __init__(self, dtype: str = "bf16"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}: "
                             "bf16 needs no loss scaling; fp16 is for GPUs without bf16.")
        self.dtype = dtype
        self._autocast: Any = None
        self.scaler: torch.amp.GradScaler | None = None
        self._scaler_state: dict | None = None

    def before_fit(self):
        self._device_type = self.learn.device.type
        if self.dtype == "fp16" and self.scaler is None:  # kept across fits: its scale is learnt
            self.scaler = torch.amp.GradScaler(self._device_type)
            if self._scaler_state is not None:
                self.scaler.load_state_dict(self._scaler_state)

    def before_batch(self):
        self._autocast = torch.autocast(self._device_type, dtype=DTYPES[self.dtype])
        self._autocast.__enter__()

    def after_loss(self):
        self._leave()

    def before_backward(self):
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self):
        scaler = self.scaler
        if scaler is None:
            return
        scaler.unscale_(self.learn.opt)  # records whether any gradient is inf or NaN
        scale = scaler.get_scale()
        scaler.update()  # backs the scale off (times 0.5) exactly when it recorded an inf or NaN
        if scaler.get_scale() < scale:
            self.learn.opt.zero_grad(set_to_none=True)  # an overflowed gradient must not be accumulated
            raise CancelStepException()

    def _leave(self) -> None:
        if self._autocast is not None:
            self._autocast, autocast = None, self._autocast
            autocast.__exit__(None, None, None)

    after_batch = after_cancel_batch = after_fit = _leave

    def state_dict(self) -> dict:
        """The GradScaler's state (fp16), for a checkpoint."""
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (into the GradScaler the next fit makes, if none yet)."""
        if "scaler" in state:
            self._scaler_state = state["scaler"]
            if self.scaler is not None:
                self.scaler.load_state_dict(self._scaler_state)


class ChannelsLast(Callback):
    """Conv weights and 4-d inputs in channels-last memory order, which cuDNN's fastest kernels use (with AMP)."""

    order = 5

    def before_fit(self):
        model = self.learn.model
        if isinstance(model, torch.nn.Module):  # buffers too
            model.to(memory_format=torch.channels_last)
            return
        for p in model.parameters():  # learnloop's Module: same Parameter objects, so the optimizer stays valid
            if p.ndim == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)

    def before_batch(self):
        xb = self.learn.xb
        if isinstance(xb, torch.Tensor) and xb.ndim == 4:
            self.learn.xb = xb.contiguous(memory_format=torch.channels_last)


class GradientAccumulation(Callback):
    """Steps once every `n_acc` training batches, on the mean of their gradients: a batch `n_acc` times larger.

    Each loss is divided by `n_acc` before backward, and the batches that do not step skip only their step
    (`CancelStepException` in `before_step`: no step, no zero_grad), so with equal batch sizes the accumulated
    gradient is the big batch's mean. Which batches step follows from `iter`, so a resumed epoch keeps the
    same groups; gradients left over at the end of an epoch are dropped.
    """

    order = -20

    def __init__(self, n_acc: int = 2):
        if not isinstance(n_acc, int) or n_acc < 1:
            raise ValueError(f"n_acc must be a positive int (batches per step), got {n_acc!r}.")
        self.n_acc = n_acc

    def before_train(self):
        self.learn.opt.zero_grad(set_to_none=True)

    def before_backward(self):
        self.learn.loss_grad = self.learn.loss_grad / self.n_acc

    def before_step(self):
        if (self.learn.iter + 1) % self.n_acc:
            raise CancelStepException()  # keep accumulating


class CompileModel(Callback):
    """Runs the model through `torch.compile(**kwargs)` during fits (compiled once, reused by later fits), and warns
    when the first training phase compiled no graph.

    A torch.nn.Module whose `forward` is your code is compiled in place (`Module.compile`: the same object and
    state_dict keys, and it stays compiled). One whose `forward` is torch's own (an `nn.Sequential` of torch layers),
    which `Module.compile` would leave uncompiled, is swapped for `torch.compile(model)` for the fit, then put back;
    so is a learnloop Module's compiled `to_torch` view.
    """

    order = -30

    def __init__(self, **kwargs: Any):
        self.kwargs, self._source, self._compiled, self._graphs = kwargs, None, None, None

    def before_fit(self):
        model = self.learn.model
        if model is self._compiled:  # already swapped in, e.g. a fit inside a fit
            return
        if model is not self._source:
            self._source, view = model, to_torch(model)
            if _in_torch(type(view).forward):  # dynamo skips frames in torch's own files: wrap the module instead
                self._compiled = torch.compile(view, **self.kwargs)
            else:
                view.compile(**self.kwargs)
                self._compiled = view
            self._graphs = compiled_graphs()  # checked after the first training phase
        self.learn.model = self._compiled

    def after_train(self):
        if self._graphs is None:
            return
        kind = type(self._source)
        if compiled_graphs() > self._graphs:
            _COMPILED_KINDS.add(kind)
        elif kind not in _COMPILED_KINDS:  # (a model like one compiled before reuses its cached graphs)
            warnings.warn(f"CompileModel: torch.compile compiled no graph of {kind.__name__} in the first epoch, "
                          "so it runs eagerly. TORCH_LOGS=graph_breaks shows why.", stacklevel=2)
        self._graphs = None

    def after_fit(self):
        if self._source is not None:
            self.learn.model = self._source


_COMPILED_KINDS: set[type] = set()  # model classes a CompileModel compiled graphs for, in this process


def _in_torch(fn: Any) -> bool:
    path = getattr(getattr(fn, "__code__", None), "co_filename", "")
    return path.startswith(os.path.dirname(torch.__file__) + os.sep)


def compiled_graphs() -> int:
    """How many graphs torch.compile has compiled in this process (dynamo's `unique_graphs` counter)."""
    from torch._dynamo.utils import counters  # the counter torch's own tests read

    return counters["stats"]["unique_graphs"]
