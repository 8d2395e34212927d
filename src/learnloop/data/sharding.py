"""Sharding for DDP: each rank reads its own part of a dataset (`DataLoader.set_shard` for learnloop's
loader; samplers for torch's)."""

from __future__ import annotations

from typing import Any

import torch

from .loader import DataLoader


class ShardSampler(torch.utils.data.Sampler):
    """Indices `rank, rank + world_size, ...` of a dataset, no padding: each sample on exactly one rank (validation)."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int):
        self.n, self.num_replicas, self.rank = len(dataset), num_replicas, rank

    def __iter__(self):
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def shard_of(dl: Any) -> tuple[int, int, int] | None:
    """(rank, world_size, dataset length) of a sharded loader, None when it is not sharded."""
    if isinstance(dl, DataLoader):
        return (dl.rank, dl.world_size, len(dl.ds)) if dl.world_size > 1 else None
    sampler = getattr(dl, "sampler", None)
    if isinstance(sampler, (ShardSampler, torch.utils.data.DistributedSampler)):
        return sampler.rank, sampler.num_replicas, len(dl.dataset)
    return None


def rebuild_torch_loader(dl: torch.utils.data.DataLoader, sampler: torch.utils.data.Sampler) -> Any:
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
