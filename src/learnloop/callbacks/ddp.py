"""The DDP callback: one fit as one rank of many (process group, device, sharded loaders, DDP wrap), all
undone after the fit. The Learner installs it under torchrun (`WORLD_SIZE > 1`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch

from ..data.loader import DataLoader
from ..data.sharding import ShardSampler, rebuild_torch_loader
from ..distributed import DEFAULT_TIMEOUT, broadcast_seed, is_distributed, local_rank, mark_failed, rank, setup, world_size
from ..nn.torch_view import to_torch
from .core import Callback


class DistributedCallback(Callback):
    """Runs a fit as one rank of many: process group, device, sharded loaders, DDP; undoes all of it after.

    Installed by the Learner when `WORLD_SIZE > 1`. `ddp_kwargs` go to `DistributedDataParallel` (e.g.
    `learn.distributed.ddp_kwargs["find_unused_parameters"] = True`). Runs first (order -20) so that
    schedules see the sharded loaders' lengths: `fit_one_cycle` counts each rank's batches.
    """

    order = -20

    def __init__(self, timeout: timedelta = DEFAULT_TIMEOUT, **ddp_kwargs: Any):
        self.timeout, self.ddp_kwargs = timeout, ddp_kwargs
        self._undo: list[Callable[[], None]] = []
        self._wrapped: tuple[Any, list[bool]] | None = None  # the model DDP wraps, and which params were trainable

    def before_fit(self):
        if not is_distributed():
            return
        self._pin_device()
        setup(self.learn.device, self.timeout)
        seed = broadcast_seed()  # for shuffled loaders without a seed: the same order on every rank
        self._shard("train", even=True, seed=seed)
        self._shard("valid", even=False, seed=seed)
        self._wrap_model()

    def before_epoch(self):
        sampler = getattr(self.dls.train, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler):
            sampler.set_epoch(self.epoch)  # a new shuffle every epoch, the same on every rank

    def before_train(self):
        # DDP syncs the gradients of the parameters that were trainable when it wrapped: after a freeze or unfreeze
        # inside the fit (fine_tune's), wrap again (a collective, reached at the same epoch on every rank).
        if self._wrapped is not None and self._trainable() != self._wrapped[1]:
            self.learn.model = self._wrapped[0]
            self._undo.pop()
            self._wrap_model()

    def after_fit(self):
        if self.learn.error is not None:  # the others may never reach the exit barrier
            mark_failed()
        while self._undo:  # also after an error: learn.model and the loaders are the user's again
            self._undo.pop()()
        self._wrapped = None

    def _pin_device(self):
        device = self.learn.device
        if device.type != "cuda" or device.index == local_rank():
            return
        # one GPU per rank: LOCAL_RANK's (torchrun runs LOCAL_RANK 0..nproc_per_node-1 on each node)
        if device.index is not None:
            warnings.warn(f"device {device} replaced by cuda:{local_rank()} (LOCAL_RANK) for this rank.", stacklevel=2)
        self.learn.device = torch.device("cuda", local_rank())
        self.learn.model.to(self.learn.device)

    def _shard(self, name: str, even: bool, seed: int):
        dls = self.dls
        dl = getattr(dls, name, None)
        if dl is None:
            return
        r, n = rank(), world_size()
        if isinstance(dl, DataLoader):
            self._shard_learnloop(dl, r, n, even, seed)
        elif isinstance(dl, torch.utils.data.DataLoader):
            sharded = self._shard_torch(dl, r, n, even, seed)
            if sharded is not dl:
                setattr(dls, name, sharded)
                self._undo.append(lambda: setattr(dls, name, dl))
        else:
            warnings.warn(
                f"dls.{name} ({type(dl).__name__}) is neither a learnloop nor a torch DataLoader, so every rank "
                f"reads all of it; shard it yourself (rank(), world_size()) so ranks run equal numbers of batches.",
                stacklevel=2,
            )

    def _shard_learnloop(self, dl: DataLoader, r: int, n: int, even: bool, seed: int):
        old = dl.rank, dl.world_size, dl.even, dl.seed
        dl.set_shard(r, n, even)
        if dl.shuffle and dl.seed is None:
            dl.seed = seed

        def restore():
            dl.rank, dl.world_size, dl.even, dl.seed = old

        self._undo.append(restore)

    def _shard_torch(self, dl: torch.utils.data.DataLoader, r: int, n: int, even: bool, seed: int) -> Any:
        sampler = dl.sampler
        if isinstance(sampler, (torch.utils.data.DistributedSampler, ShardSampler)):
            return dl  # sharded by the user already
        plain = isinstance(sampler, (torch.utils.data.SequentialSampler, torch.utils.data.RandomSampler))
        if not plain or dl.batch_size is None:
            warnings.warn(
                f"a torch DataLoader with a {type(sampler).__name__} (or a batch_sampler) is not sharded: every "
                f"rank reads all of it. Give it a DistributedSampler (training) or learnloop.distributed."
                f"ShardSampler (validation).",
                stacklevel=2,
            )
            return dl
        shuffle = isinstance(sampler, torch.utils.data.RandomSampler)
        if even:
            new = torch.utils.data.DistributedSampler(dl.dataset, n, r, shuffle=shuffle, seed=seed % 2**63)
        else:
            new = ShardSampler(dl.dataset, n, r)
        return rebuild_torch_loader(dl, new)

    def _wrap_model(self):
        model, device = self.learn.model, self.learn.device
        device_ids = [device.index] if device.type == "cuda" else None
        # rank 0's weights are broadcast to every rank here, so all ranks start alike
        self._wrapped = model, self._trainable()
        self.learn.model = torch.nn.parallel.DistributedDataParallel(to_torch(model), device_ids, **self.ddp_kwargs)
        self._undo.append(lambda: setattr(self.learn, "model", model))

    def _trainable(self) -> list[bool]:
        return [p.requires_grad for p in self.learn.layer_groups.model.parameters()]


def distributed_callbacks() -> list[Callback]:
    """The Learner's distributed callbacks: a `DistributedCallback` under torchrun (`WORLD_SIZE > 1`), else none."""
    return [DistributedCallback()] if is_distributed() else []
