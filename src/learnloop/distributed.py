"""torchrun / DDP: where this process stands, the process group, and the collectives learnloop uses.

The same script runs in one process or in many (`torchrun --nproc_per_node N`). The fit-time part (shard the
loaders, wrap the model in DDP and undo it) is a callback, `callbacks/ddp.py`; sharding samplers are in
`data/sharding.py`. The rest of learnloop asks this module: `is_main()` for I/O (rank 0 only),
`all_reduce_sum` for the Recorder's per-phase figures, `unwrap(model)` before saving state. Every helper is
a no-op in a single process.

A process group learnloop creates lives until the process exits (a second `init_process_group` after
`destroy_process_group` in the same process is unreliable under torchrun); an `atexit` hook then waits
for every rank (`barrier`) and destroys it, so no rank exits while another is still talking to it.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .data.sharding import shard_of
from .errors import SettingError
from .nn.torch_view import TorchModule

__all__ = [
    "rank", "world_size", "local_rank", "is_main", "is_distributed", "default_device", "setup", "teardown",
    "barrier", "all_reduce_sum", "all_reduce_mean", "broadcast_seed", "unwrap", "gather_preds", "mark_failed",
    "check_device",
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


def check_device(name: str | None, what: str = "--device") -> None:
    """A SettingError unless `name` is a device this machine has (None: the default, always fine); `what` is how
    the message names the setting."""
    if name is None:
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"{what} {name!r} is not a device: use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
            raise SettingError(f"{what} {name}: no CUDA GPU is available{build}; use {what} cpu, or leave "
                               f"{what} out to use a GPU when there is one.")
        if device.index is not None and device.index >= n:
            raise SettingError(f"{what} {name}: this machine has {n} CUDA GPU{'s' * (n > 1)}, cuda:0 to "
                               f"cuda:{n - 1}.")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise SettingError(f"{what} {name}: Apple's MPS is not available here; use {what} cpu.")


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


def mark_failed() -> None:
    """Record that a fit on this rank raised: at exit, `teardown` then leaves without waiting for the others."""
    global _failed
    _failed = True


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
    """The user's model inside a DDP wrapper, torch.compile's wrapper and the torch view of a learnloop Module: save
    its state."""
    model = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    model = getattr(model, "_orig_mod", model)  # the module inside torch.compile's wrapper
    return model.source if isinstance(model, TorchModule) else model


def gather_preds(dl: Any, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from every rank, in dataset order, when `dl` is sharded `order[rank::world_size]`."""
    shard = shard_of(dl)
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
