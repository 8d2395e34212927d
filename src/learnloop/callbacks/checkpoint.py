"""Checkpoints for exact resume: `Checkpoint` writes the whole training state, `Resume` restores it.

A checkpoint is one plain dict of state_dicts and counters, loadable with `weights_only=True`:
`model`, `opt`, `frozen` (which layer groups are frozen), `cbs` (each stateful callback's `state_dict`, by name), `epoch` and `iter` (the next
batch to run), `n_epoch`, `history`, `rng` (torch, CUDA, numpy, python and the train loader's
generators), `loader` (the train loader's `state_dict`, when it has one), `version`, and `meta`: what the
run was made with (learnloop and torch versions, plus the `meta` given to `Checkpoint`, e.g. dataset and
model), which a resume checks.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..distributed import unwrap
from ..errors import CheckpointError
from ..saving import atomic_save, load_checkpoint
from ..rng import rng_state, set_rng_state
from .core import Callback

VERSION = 1
VERSION_KEYS = ("learnloop", "torch")  # meta that may differ on resume (with a warning); any other key must match


# -- the training state ------------------------------------------------------------------------
def _cb_keys(learn: Any) -> dict[str, Callback]:
    """Callbacks by checkpoint key: their name, with `_2`, `_3`, ... for repeats of a name."""
    keys: dict[str, Callback] = {}
    for cb in learn.cbs:
        key, n = cb.name, 1
        while key in keys:
            n += 1
            key = f"{cb.name}_{n}"
        keys[key] = cb
    return keys


def loader_can_resume(dl: Any) -> bool:
    """Whether loader `dl` saves and restores its position (`state_dict`/`load_state_dict`), so a checkpoint may be
    written mid-epoch and the rest of that epoch replayed on resume (learnloop's DataLoader does)."""
    return callable(getattr(dl, "state_dict", None)) and callable(getattr(dl, "load_state_dict", None))


def training_state(learn: Any, epoch: int, it: int) -> dict:
    """The checkpoint dict of `learn`, positioned before batch `it` of epoch `epoch`."""
    dl = learn.dls.train
    loader = None
    if loader_can_resume(dl):
        # The loader may have yielded a batch past `it` (a stop between batches): resume at `it`.
        loader = {**dl.state_dict(), "batch": it} if it else dl.state_dict()
    cbs = {key: cb.state_dict() for key, cb in _cb_keys(learn).items()}
    return {
        "version": VERSION,
        "model": unwrap(learn.model).state_dict(),  # the user's keys, also under DDP
        "opt": learn.opt.state_dict(),
        "frozen": learn.layer_groups.state_dict(),
        "cbs": {key: state for key, state in cbs.items() if state},
        "epoch": epoch,
        "iter": it,
        "n_epoch": learn.n_epoch,
        "history": [dict(row) for row in learn.history],
        "rng": rng_state(learn),
        "loader": loader,
    }


def finite_weights(model: Any) -> bool:
    """Whether every parameter of `model` is finite (no NaN or inf)."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class Checkpoint(Callback):
    """Saves the full training state to `path` (atomically) every `every_n_batches` training batches,
    counted across the fit, and every `every_n_epochs` epochs; also at the end of the fit, and when it
    stops between batches (an error, Ctrl-C). Never from non-finite weights. Resume with
    `learn.fit(..., resume=path)`. `meta` (plain values: str, int, float, bool, None) records what the run
    was made with, e.g. `{"dataset": "digits", "arch": "simple_cnn"}`; a resume refuses a checkpoint whose
    meta differs from its own `Checkpoint`'s. `saved_at` is (epoch, iter) of the last checkpoint written; `meta`
    what it writes (learnloop's and torch's versions added)."""

    order = 90  # after every other callback: the records of the batch or epoch are complete
    during_lr_find = False
    main_only = True  # under torchrun rank 0 writes (every rank holds the same state); all ranks can resume

    def __init__(self, path: str | os.PathLike, every_n_batches: int | None = None, every_n_epochs: int | None = 1,
                 meta: dict[str, Any] | None = None):
        for name, value in (("every_n_batches", every_n_batches), ("every_n_epochs", every_n_epochs)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}.")
        self.path, self.every_n_batches, self.every_n_epochs = Path(path), every_n_batches, every_n_epochs
        self.meta = run_meta(meta)
        self.saved_at: tuple[int, int] | None = None  # (epoch, iter) of the last checkpoint written
        self._batch_done: tuple[int, int] | None = None  # (epoch, iter + 1) of the last training batch done
        self._epoch_start: tuple[int, int] | None = None  # (epoch, len(history)) when this epoch began

    def before_fit(self):
        self.saved_at = self._batch_done = self._epoch_start = None
        if self.every_n_batches and not loader_can_resume(self.dls.train):
            raise ValueError(
                f"Checkpoint(every_n_batches={self.every_n_batches}) writes mid-epoch checkpoints, but the train "
                f"loader ({type(self.dls.train).__name__}) has no state_dict/load_state_dict, so a resume could "
                f"not replay the rest of the epoch. Use learnloop.data.DataLoader, or every_n_batches=None to "
                f"checkpoint at epoch ends only."
            )

    def before_epoch(self):
        self._epoch_start = (self.epoch, len(self.history))

    def after_batch(self):
        if not self.training:
            return
        it = self.iter + 1
        self._batch_done = (self.epoch, it)
        n = self.every_n_batches
        # At the end of the train phase the epoch's checkpoint follows; a resume can't start validation.
        if n and (self.learn.train_iter + 1) % n == 0 and it < self.learn.n_iter:
            self.save(self.epoch, it)

    def after_epoch(self):
        if self.every_n_epochs and (self.epoch + 1) % self.every_n_epochs == 0:
            self.save(self.epoch + 1, 0)

    def after_fit(self):
        stop = self._stop_position()
        if stop is not None and stop != self.saved_at:
            self.save(*stop)
        elif stop is None and self.learn.error is not None and self.saved_at is not None:
            warnings.warn(
                f"The fit stopped at batch {self.iter} of epoch {self.epoch}, where no checkpoint can be written "
                f"(inside a step, or mid-epoch with a loader that can't resume there); the last checkpoint "
                f"({self.path}, epoch {self.saved_at[0]}, batch {self.saved_at[1]}) is kept: resume from it.",
                RuntimeWarning,
            )

    def _stop_position(self) -> tuple[int, int] | None:
        """Where the fit stopped, if that is a clean point (between batches, or after an epoch); else None."""
        if self._epoch_start and self._epoch_start[0] == self.epoch and len(self.history) > self._epoch_start[1]:
            return self.epoch + 1, 0  # the epoch's row was recorded: it ended
        # No batch has begun since the last one ended (the learner sets `iter` when a batch arrives), and
        # the loader can replay the rest of the epoch: else the epoch-end checkpoint is the one to keep.
        between_batches = self.training and self._batch_done == (self.epoch, self.iter + 1)
        if between_batches and self.iter + 1 < self.learn.n_iter and loader_can_resume(self.dls.train):
            return self._batch_done
        return None

    def save_on_stop(self, epoch: int, it: int) -> tuple[int, int] | None:
        """For a fit stopping before batch `it` of `epoch` (a signal, `GracefulInterrupt`): write the checkpoint
        there unless it is written already or the loader can't resume mid-epoch; return (epoch, iter) of the last
        checkpoint written, or None."""
        if (it == 0 or loader_can_resume(self.dls.train)) and self.saved_at != (epoch, it):
            self.save(epoch, it)  # skipped (with a warning) when the weights are not finite
        return self.saved_at

    def check_meta(self, state: dict, path: Path | str = "checkpoint") -> None:
        """Refuse (CheckpointError) a checkpoint `state` written by a run whose meta differs from the one this
        callback writes; warn when only learnloop's or torch's version differs."""
        check_meta(state, self.meta, path)

    def save(self, epoch: int, it: int) -> Path | None:
        """Write the checkpoint positioned before batch `it` of `epoch`; skipped (with a warning) if weights aren't finite."""
        if not finite_weights(self.model):
            warnings.warn(f"Checkpoint: not writing {self.path}, the weights are not finite (NaN or inf); "
                          f"the previous checkpoint is kept.", RuntimeWarning)
            return None
        atomic_save({**training_state(self.learn, epoch, it), "meta": self.meta}, self.path)
        self.saved_at = (epoch, it)
        return self.path


class Resume(Callback):
    """Restores the training state of a checkpoint after every other `before_fit` (added by `fit(resume=...)`).

    Before that it compares the checkpoint's `meta` with `meta` (default: the meta of the fit's `Checkpoint`
    callback): a difference that would change the run (data, model, batch size, seed) is a `CheckpointError`,
    other versions of learnloop or torch a warning."""

    during_lr_find = False
    order = 1000  # last: the other callbacks initialise in before_fit, then get their saved state

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.state = load_checkpoint(self.path)  # now, so a bad path fails before the fit starts
        check_version(self.state, self.path)
        self.checked = meta is not None
        if self.checked:
            check_meta(self.state, run_meta(meta), self.path)

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, batch) the resumed fit starts at: the next training batch to run."""
        return self.state.get("epoch", 0), self.state.get("iter", 0)

    def before_fit(self):
        if not self.checked:
            ckpts = [cb for cb in self.learn.cbs if isinstance(cb, Checkpoint)]
            if ckpts:  # the one writing to this file, else the first
                ckpt = next((cb for cb in ckpts if cb.path.resolve() == self.path.resolve()), ckpts[0])
                ckpt.check_meta(self.state, self.path)
        restore_training_state(self.learn, self.state, self.path)


def _learnloop_version() -> str:
    try:
        return importlib.metadata.version("learnloop")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


_PLAIN = (str, int, float, bool, type(None))


def run_meta(meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run is made with: learnloop's and torch's versions, then `meta` (plain values only)."""
    meta = dict(meta or {})
    # exact types: a str or int subclass (numpy's, torch's TorchVersion) is refused by torch.load(weights_only)
    bad = {key: value for key, value in meta.items() if type(key) is not str or type(value) not in _PLAIN}
    if bad:
        raise ValueError(f"Checkpoint meta must map names to str, int, float, bool or None (torch.load reads "
                         f"those back safely); got {bad!r}. Convert the values, e.g. str(path).")
    return {"learnloop": _learnloop_version(), "torch": str(torch.__version__), **meta}


def check_version(state: dict, path: Path | str = "checkpoint") -> None:
    """A CheckpointError unless `state` is a training checkpoint of the format this learnloop writes."""
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a learnloop training checkpoint (version {state.get('version')!r}, "
                              f"expected {VERSION}); learn.load() reads files written by learn.save().")


def check_meta(state: dict, expected: dict[str, Any], path: Path | str = "checkpoint") -> None:
    """Compare a checkpoint's `meta` with `expected`: CheckpointError naming every key that differs and would
    change the run; a warning when only learnloop's or torch's version differs."""
    saved = state.get("meta")
    if not isinstance(saved, dict):
        warnings.warn(f"{path} records nothing about the run that wrote it (written by an older learnloop): "
                      f"resuming without checking its data, model or batch size.")
        return
    differ = [key for key in expected if key in saved and saved[key] != expected[key]]
    if not differ:
        return
    refused = [key for key in differ if key not in VERSION_KEYS]
    show = lambda d, keys: ", ".join(f"{key}={d[key]!r}" for key in keys)  # noqa: E731
    if refused:
        raise CheckpointError(f"{path} was written by a run with {show(saved, refused)}, but this run has "
                              f"{show(expected, refused)}: it can't be resumed exactly. Resume with the "
                              f"checkpoint's settings, or start a new run.")
    warnings.warn(f"{path} was written with {show(saved, differ)}, this run uses {show(expected, differ)}: "
                  f"resuming, but the result may differ from an uninterrupted run in the last bits.")


def load_training_state(learn: Any, state: dict) -> None:
    """Put `learn` back in the state `training_state` captured: weights, optimizer (and so the hyper-parameter
    record), what is frozen, callbacks' states, history, every RNG and the train loader's position."""
    unwrap(learn.model).load_state_dict(state["model"])
    learn.opt.load_state_dict(state["opt"])
    learn.read_hps()
    if "frozen" in state:  # checkpoints written before layer groups have none: all trained
        learn.layer_groups.load_state_dict(state["frozen"])
    cbs = _cb_keys(learn)
    for key, cb_state in state["cbs"].items():
        if key in cbs:
            cbs[key].load_state_dict(cb_state)
    learn.history[:] = state["history"]
    set_rng_state(learn, state["rng"])
    if state["loader"] is not None and loader_can_resume(learn.dls.train):
        learn.dls.train.load_state_dict(state["loader"])


def restore_training_state(learn: Any, state: dict, path: Path | str = "checkpoint") -> None:
    """Load a checkpoint's `training_state` into `learn` and position its next fit at the saved batch."""
    check_version(state, path)
    epoch, it = state["epoch"], state["iter"]
    dl = learn.dls.train
    if it and not loader_can_resume(dl):
        raise CheckpointError(
            f"{path} was written mid-epoch (epoch {epoch}, batch {it}), but the train loader "
            f"({type(dl).__name__}) has no load_state_dict, so the rest of that epoch can't be replayed. "
            f"Resume with a learnloop.data.DataLoader, or from an epoch-end checkpoint."
        )
    if state["n_epoch"] != learn.n_epoch:
        warnings.warn(f"{path} comes from a fit of {state['n_epoch']} epochs, this one has {learn.n_epoch}: "
                      f"schedules that depend on the length of the fit will differ from the original run.")
    _check_weights(learn, state, path)
    saved, mine = len(state["opt"].get("param_groups", [])), len(learn.opt.param_groups)
    if saved != mine:  # e.g. written before layer groups (one group), resumed by a learner with body and head
        raise CheckpointError(f"{path} holds an optimizer of {saved} param group(s), this learner's has {mine} (one "
                              f"per layer group): resume with the splitter that wrote it, e.g. Learner(..., splitter="
                              f"lambda m: [list(m.parameters())]) for a single group.")
    missing = sorted(set(state["cbs"]) - set(_cb_keys(learn)))
    if missing:
        warnings.warn(f"{path} holds the state of callbacks this learner lacks: {missing}; it is ignored.")
    load_training_state(learn, state)
    learn.start_epoch, learn.start_iter = epoch, it
    if epoch >= learn.n_epoch:
        warnings.warn(f"{path} is from a fit that already finished (epoch {epoch} of {learn.n_epoch}): its final "
                      f"state is restored and there is nothing left to train. To train more, pass a larger "
                      f"n_epoch without resume.")


def _check_weights(learn: Any, state: dict, path: Path | str) -> None:
    """A CheckpointError if the checkpoint's weights belong to another model: other names, or other shapes."""
    mine, saved = unwrap(learn.model).state_dict(), state["model"]
    if mine.keys() != saved.keys():
        missing, unexpected = sorted(set(mine) - set(saved)), sorted(set(saved) - set(mine))
        raise CheckpointError(f"{path} holds the weights of another model: {len(missing)} of this model's tensors "
                              f"are missing (e.g. {missing[:3]}), {len(unexpected)} are unknown to it (e.g. "
                              f"{unexpected[:3]}). Resume with the model that wrote it.")
    wrong = [key for key in mine if mine[key].shape != saved[key].shape]
    if wrong:
        key = wrong[0]
        raise CheckpointError(f"{path} holds the weights of another model: {key} has shape {tuple(saved[key].shape)} "
                              f"there and {tuple(mine[key].shape)} here ({len(wrong)} tensors differ). Resume with "
                              f"the model that wrote it.")
