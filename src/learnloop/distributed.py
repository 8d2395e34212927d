"""torchrun / DDP glue: the same script runs in one process or in many (`torchrun --nproc_per_node N`).

Launched by torchrun (`WORLD_SIZE > 1` in the environment), the Learner installs a `DistributedCallback`,
which for each fit: creates the process group if the user has not (nccl on CUDA, gloo on CPU), pins the
rank to its `LOCAL_RANK` GPU, shards the train and valid loaders, wraps the model in torch's
`DistributedDataParallel` and unwraps it after, so `learn.model` is the user's model again. The rest of
learnloop asks this module: `is_main()` for I/O (rank 0 only), `all_reduce_sum` for the Recorder's
per-phase figures, `unwrap(model)` before saving state. Every helper is a no-op in a single process.

A process group learnloop creates lives until the process exits (a second `init_process_group` after
`destroy_process_group` in the same process is unreliable under torchrun); an `atexit` hook then waits
for every rank (`barrier`) and destroys it, so no rank exits while another is still talking to it.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .callbacks.core import Callback
from .data.loader import DataLoader, shard_indices
from .nn.module import TorchModule, to_torch

__all__ = [
    "rank", "world_size", "local_rank", "is_main", "is_distributed", "default_device", "setup", "teardown",
    "barrier", "all_reduce_sum", "all_reduce_mean", "broadcast_seed", "unwrap", "gather_preds",
    "shard_indices", "ShardSampler", "DistributedCallback", "default_callbacks",
]  # fmt: skip

DEFAULT_TIMEOUT = timedelta(minutes=10)  # a rank stuck in a collective fails after this, instead of hanging
_created_group = False  # whether learnloop created the default process group (and so must destroy it)
_failed = False  # a fit on this rank raised: the other ranks may never reach a barrier


# -- where this process stands ---------------------------------------------------------------
def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank: from the process group, else torchrun's `RANK`, else 0."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Number of processes: from the process group, else torchrun's `WORLD_SIZE`, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's rank on its node (torchrun's `LOCAL_RANK`, else 0): the index of its GPU."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that prints and writes files."""
    return rank() == 0


def is_distributed() -> bool:
    """True when launched as one of several processes (`WORLD_SIZE > 1`)."""
    return world_size() > 1


def default_device() -> torch.device:
    """`cuda:LOCAL_RANK` under torchrun with CUDA, `cuda` with CUDA alone, else `cpu`."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank()) if is_distributed() else torch.device("cuda")


# -- the process group -----------------------------------------------------------------------
def setup(device: torch.device | str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Create the default process group from torchrun's environment unless there is one (or one process);
    nccl for a CUDA `device`, gloo otherwise. True when this call created it."""
    global _created_group
    if not is_distributed() or dist.is_initialized():
        return False
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # device_id (torch >= 2.3) binds the group to this GPU, so barriers need not guess it
        bind = {"device_id": device} if "device_id" in inspect.signature(dist.init_process_group).parameters else {}
        dist.init_process_group("nccl", timeout=timeout, **bind)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    _created_group = True
    atexit.register(teardown)
    return True


def teardown() -> None:
    """Wait for every rank, then destroy the process group, if learnloop created it (runs at exit)."""
    global _created_group
    if not (_created_group and dist.is_initialized()):
        return
    _created_group = False
    # After an error (in a fit, or uncaught: sys.last_value) the others may be stuck in a collective that
    # this rank will never join; waiting for them would hang until the timeout, so leave at once: they fail
    # on the closed connection, and torchrun stops the run.
    crashed = _failed or getattr(sys, "last_value", None) is not None
    try:
        if not crashed:
            dist.barrier()  # no rank leaves while another still needs it
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if _active():
        dist.barrier()


def _comm_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo CPU ones
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over all ranks (a new tensor on `t`'s device); `t` itself in a single process."""
    if not _active():
        return t
    out = t.to(_comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """`t` averaged over all ranks; `t` itself in a single process."""
    return all_reduce_sum(t) / world_size() if _active() else t


def broadcast_seed() -> int:
    """A seed from the global torch RNG, rank 0's on every rank (every rank draws, so all RNGs advance alike)."""
    seed = torch.randint(0, 2**62, (1,), dtype=torch.int64)
    if _active():
        seed = seed.to(_comm_device())
        dist.broadcast(seed, src=0)
    return int(seed.item())


def unwrap(model: Any) -> Any:
    """The user's model inside a DDP wrapper (and inside the torch view of a learnloop Module): save its state."""
    model = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return model.source if isinstance(model, TorchModule) else model


# -- sharding ----------------------------------------------------------------------------------
class ShardSampler(torch.utils.data.Sampler):
    """Indices `rank, rank + world_size, ...` of a dataset, no padding: each sample on exactly one rank (validation)."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int):
        self.n, self.num_replicas, self.rank = len(dataset), num_replicas, rank

    def __iter__(self):
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def _shard_of(dl: Any) -> tuple[int, int, int] | None:
    """(rank, world_size, dataset length) of a sharded loader, None when it is not sharded."""
    if isinstance(dl, DataLoader):
        return (dl.rank, dl.world_size, len(dl.ds)) if dl.world_size > 1 else None
    sampler = getattr(dl, "sampler", None)
    if isinstance(sampler, (ShardSampler, torch.utils.data.DistributedSampler)):
        return sampler.rank, sampler.num_replicas, len(dl.dataset)
    return None


def gather_preds(dl: Any, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from every rank, in dataset order, when `dl` is sharded `order[rank::world_size]`."""
    shard = _shard_of(dl)
    if shard is None or not _active():
        return tensors
    _, n_ranks, n = shard
    return tuple(_gather_strided(t, n_ranks, n) for t in tensors)


def _gather_strided(t: torch.Tensor, n_ranks: int, n: int) -> torch.Tensor:
    # shards differ in length by one at most: pad to the longest, gather, then interleave back
    local = t.to(_comm_device())
    sizes = [torch.zeros(1, dtype=torch.int64, device=local.device) for _ in range(n_ranks)]
    dist.all_gather(sizes, torch.tensor([len(local)], device=local.device))
    longest = int(max(sizes).item())
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(n_ranks)]
    dist.all_gather(parts, padded)
    full = torch.empty((longest * n_ranks, *local.shape[1:]), dtype=local.dtype, device=local.device)
    for r, (part, size) in enumerate(zip(parts, sizes)):
        full[r::n_ranks][: int(size.item())] = part[: int(size.item())]
    return full[:n].to(t.device)  # an evenly padded (train) shard's repeats fall past n


def _rebuild_torch_loader(dl: torch.utils.data.DataLoader, sampler: torch.utils.data.Sampler) -> Any:
    """A torch DataLoader like `dl` that draws its indices from `sampler`."""
    kwargs = dict(
        batch_size=dl.batch_size, sampler=sampler, num_workers=dl.num_workers, collate_fn=dl.collate_fn,
        pin_memory=dl.pin_memory, drop_last=dl.drop_last, timeout=dl.timeout, worker_init_fn=dl.worker_init_fn,
        multiprocessing_context=dl.multiprocessing_context, generator=dl.generator,
        persistent_workers=dl.persistent_workers,
    )  # fmt: skip
    if dl.num_workers > 0:
        kwargs["prefetch_factor"] = dl.prefetch_factor
    return torch.utils.data.DataLoader(dl.dataset, **kwargs)


# -- the callback --------------------------------------------------------------------------------
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

    def before_fit(self):
        if not is_distributed():
            return
        self._refuse_lr_find()
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

    def after_fit(self):
        global _failed
        # the Learner runs after_fit inside its `except` when the fit raised (not when it was cancelled):
        # sys.exc_info() is then that error
        _failed = _failed or sys.exc_info()[1] is not None
        while self._undo:  # also after an error: learn.model and the loaders are the user's again
            self._undo.pop()()

    def _refuse_lr_find(self):
        from .callbacks.schedule import LRFinder  # schedule imports the learner, which imports this module

        if any(isinstance(cb, LRFinder) for cb in self.cbs):
            raise RuntimeError(
                "lr_find runs in a single process: its stopping rules read each rank's own loss, so ranks would "
                "stop at different batches and hang. Run it without torchrun (python train.py), then pass the "
                "suggested lr to the script you launch with torchrun."
            )

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
        return _rebuild_torch_loader(dl, new)

    def _wrap_model(self):
        model, device = self.learn.model, self.learn.device
        device_ids = [device.index] if device.type == "cuda" else None
        # rank 0's weights are broadcast to every rank here, so all ranks start alike
        self.learn.model = torch.nn.parallel.DistributedDataParallel(to_torch(model), device_ids, **self.ddp_kwargs)
        self._undo.append(lambda: setattr(self.learn, "model", model))


def default_callbacks() -> list[Callback]:
    """The Learner's distributed callbacks: a `DistributedCallback` under torchrun (`WORLD_SIZE > 1`), else none."""
    return [DistributedCallback()] if is_distributed() else []
