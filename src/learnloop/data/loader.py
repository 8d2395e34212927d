"""collate, DataLoader and DataLoaders: batches from any dataset, optionally loaded by a process pool."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import signal
import sys
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError, UserError
from .dataset import ArrayDataset
from .pipeline import ItemsDataset, Pipeline, pipeline_of

Tfms = Callable | Sequence[Callable] | None
EpochKey = tuple[int, int] | None  # (seed, epoch) for a dataset with `seed_epoch`, else None


def collate(samples: Sequence[Any]) -> Any:
    """Stack samples into a batch: tensors, numpy arrays and numbers stack; tuples, lists and dicts recurse."""
    if len(samples) == 0:
        raise ValueError("collate got no samples; a batch needs at least one.")
    first = samples[0]
    if isinstance(first, Tensor):
        return torch.stack(list(samples))
    if isinstance(first, (np.ndarray, np.generic)):
        return torch.from_numpy(np.stack(samples))
    if isinstance(first, (bool, int, float)):
        return torch.tensor(samples)
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, Mapping):
        return {k: collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        fields = [collate(f) for f in zip(*samples, strict=True)]
        return type(first)(*fields) if hasattr(first, "_fields") else type(first)(fields)  # namedtuple or not
    raise TypeError(f"collate cannot batch samples of type {type(first).__name__}; it stacks tensors, numpy "
                    "arrays, numbers and strings, nested in tuples, lists or dicts. Pass DataLoader(collate_fn=...) "
                    "for other types.")


def _get(ds: Any, i: int) -> Any:
    try:
        return ds[i]
    except Exception as e:
        if sys.version_info >= (3, 11):
            e.add_note(f"(raised by ds[{i}] while the DataLoader loaded a batch)")
        raise


def _take(t: Tensor, idx: Tensor) -> Tensor:
    """`t[idx]` along dim 0, through numpy on CPU."""
    # numpy's single-threaded take is steady; torch's 2-thread gather stalls for ms when another process is busy
    if t.is_cpu and not t.requires_grad:
        try:
            return torch.from_numpy(np.take(t.numpy(), idx.numpy(), axis=0))
        except TypeError:  # a dtype numpy lacks, like bfloat16
            pass
    return t.index_select(0, idx.to(t.device))


def _load(ds: Any, idx: Tensor | slice, collate_fn: Callable, key: EpochKey = None) -> Any:
    """One batch of `ds` at indices `idx` (a slice when in order): a single gather (or view) for a plain
    ArrayDataset, `ds.__getitems__(indices)` for a dataset that has it (torch's protocol), else sample by sample, after `ds.seed_epoch(*key)` for a dataset that draws per-sample randomness."""
    if key is not None:  # set per batch: another loader over the same dataset may have set its own
        ds.seed_epoch(*key)
    if collate_fn is collate and type(ds) is ArrayDataset and ds.tfm_x is None and ds.tfm_y is None:
        if isinstance(idx, slice):  # in order: views of the dataset's tensors, nothing copied
            return ds.x[idx], ds.y[idx]
        return _take(ds.x, idx), _take(ds.y, idx)
    indices = list(range(len(ds))[idx]) if isinstance(idx, slice) else idx.tolist()
    getitems = getattr(ds, "__getitems__", None)  # torch's batched read: Hugging Face datasets fetch rows at once
    return collate_fn(getitems(indices) if getitems is not None else [_get(ds, i) for i in indices])


def _pin(batch: Any) -> Any:
    """`batch` with its tensors in page-locked memory, so their copy to the GPU can overlap compute."""
    if isinstance(batch, Tensor):
        return batch.pin_memory()
    if isinstance(batch, (tuple, list)):
        fields = [_pin(b) for b in batch]
        return type(batch)(*fields) if hasattr(batch, "_fields") else type(batch)(fields)  # namedtuple or not
    if isinstance(batch, Mapping):
        return {k: _pin(v) for k, v in batch.items()}
    return batch


_worker_state: tuple[Any, Callable] | None = None  # (ds, collate_fn) in each worker process


def _init_worker(ds: Any, collate_fn: Callable) -> None:
    global _worker_state
    _worker_state = ds, collate_fn
    # one thread each: n_workers processes using every core would oversubscribe the CPU, and a forked child
    # that enters the parent's OpenMP pool deadlocks
    torch.set_num_threads(1)
    # A terminal's Ctrl-C reaches every process of the job: the main process stops the fit and ends the workers,
    # which would otherwise each print its notice or a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_load(idx: Tensor, key: EpochKey) -> Any:
    ds, collate_fn = _worker_state
    try:
        return _load(ds, idx, collate_fn, key)
    except UserError:  # a message for the user (e.g. a corrupt image): it pickles, and reads the same as in-process
        raise
    except Exception as e:
        # the original exception may not pickle back to the main process; its text always does
        error, tb = "".join(traceback.format_exception_only(e)).strip(), traceback.format_exc()
        raise RuntimeError(f"DataLoader worker failed: {error}\n\nWorker traceback:\n{tb}") from None


def shard_indices(order: Tensor, rank: int, world_size: int, even: bool) -> Tensor:
    """Rank `rank`'s share `order[rank::world_size]`; `even` first pads `order` with its own head to a multiple of
    `world_size` (as torch's DistributedSampler), so every rank gets the same number of samples."""
    if even and len(order) % world_size:
        pad = world_size - len(order) % world_size
        order = torch.cat([order, order.repeat(math.ceil(pad / len(order)))[:pad]])
    return order[rank::world_size]


def _as_tuple(tfms: Tfms) -> tuple[Callable, ...]:
    return () if tfms is None else (tfms,) if callable(tfms) else tuple(tfms)


class DataLoader:
    """Batches of `bs` samples from `ds`, reshuffled every epoch when `shuffle`, loaded by `n_workers` processes if > 0.

    `batch_tfms` (a callable or a sequence of them) run in order, in this process, on `xb` (the first item of each
    batch) after collate, e.g. `[ToCHW(), Normalize.from_batch(xb)]`. A plain `ArrayDataset` with the default
    collate is gathered a whole batch at a time (`x[idx]`), and unshuffled its batches are views of `x` and `y`
    (nothing copied: change them out of place, `xb = xb * 2`, not `xb *= 2`). Workers start with `mp_context` (a multiprocessing
    start method; None: the platform's default) on the first epoch and stay for the next ones (`close()` ends them;
    each holds a copy of `ds`, so call it after changing the dataset); at most `prefetch` batches per worker are
    in flight. A dataset with a `seed_epoch(seed, epoch)` method gets it before its samples are read, so it can draw
    per-sample randomness from (seed, epoch, index): `seed`, or without one a number drawn from torch's global RNG
    each epoch. `pin_memory` (on a machine with CUDA) puts batches in page-locked memory, so the Learner's
    `non_blocking` copies overlap compute. `state_dict`/`load_state_dict` resume mid-epoch exactly.
    """

    def __init__(self, ds: Any, bs: int = 64, shuffle: bool = False, n_workers: int = 0,
                 collate_fn: Callable = collate, drop_last: bool = False, seed: int | None = None,
                 batch_tfms: Tfms = None, mp_context: str | None = None, pin_memory: bool = False,
                 prefetch: int = 2) -> None:
        if not isinstance(bs, int) or bs <= 0:
            raise ValueError(f"bs must be a positive integer (samples per batch), got {bs!r}.")
        if not isinstance(n_workers, int) or n_workers < 0:
            raise ValueError(f"n_workers must be an integer >= 0 (0 loads in this process), got {n_workers!r}.")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an integer >= 1 (batches in flight per worker), got {prefetch!r}.")
        if len(ds) == 0:
            raise ValueError("the dataset is empty (len(ds) == 0); check the path or filter that built it.")
        if drop_last and len(ds) < bs:
            raise ValueError(f"drop_last=True with bs={bs} > len(ds)={len(ds)} gives no batches; "
                             "use a smaller bs or drop_last=False.")
        self.ds, self.bs, self.shuffle, self.n_workers = ds, bs, shuffle, n_workers
        self.collate_fn, self.drop_last, self.seed, self.prefetch = collate_fn, drop_last, seed, prefetch
        self.batch_tfms = _as_tuple(batch_tfms)
        self.pin_memory = pin_memory and torch.cuda.is_available()  # page-locked: a non_blocking copy to the GPU
        self.mp_context = multiprocessing.get_context(mp_context)
        self.epoch, self._order, self._batch, self._resume, self._key = 0, None, 0, False, None
        self.rank, self.world_size, self.even = 0, 1, True  # this process's shard: see `set_shard`
        self._pool: ProcessPoolExecutor | None = None
        self._pool_for: tuple = ()  # what the pool's workers were started with
        self._shutdown: weakref.finalize | None = None

    @property
    def dataset(self) -> Any:
        """The dataset (alias of `.ds`, as in torch)."""
        return self.ds

    def __len__(self) -> int:
        n = self._n_samples()
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def set_shard(self, rank: int, world_size: int, even: bool = True) -> None:
        """Yield only shard `rank` of `world_size` of every epoch's order (DDP); `even` pads so all shards are equal
        (training: every rank runs the same number of batches), else each sample is in exactly one shard (valid)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")
        self.rank, self.world_size, self.even = rank, world_size, even

    def _n_samples(self) -> int:
        n, w = len(self.ds), self.world_size
        return n if w == 1 else math.ceil(n / w) if self.even else len(range(self.rank, n, w))

    def _epoch_order(self, epoch: int) -> Tensor | None:
        """Epoch `epoch`'s indices: None (in order), or a permutation seeded by `seed + epoch` (or global RNG)."""
        # the one place the order is made, so a distributed sampler can shard it
        if not self.shuffle:
            return None
        g = None if self.seed is None else torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.ds), generator=g)

    def _epoch_key(self, epoch: int) -> EpochKey:
        """(seed, epoch) for a dataset that draws per-sample randomness; the seed is drawn when the loader has none."""
        if not callable(getattr(self.ds, "seed_epoch", None)):
            return None
        return (self.seed if self.seed is not None else int(torch.randint(0, 2**62, ())), epoch)

    def _chunks(self, order: Tensor | None, start: int) -> list[Tensor | slice]:
        """The index chunks of an epoch with order `order` (None: in order), from batch `start` on."""
        n, bs = len(self.ds), self.bs
        if order is None and self.world_size == 1:  # in order: slices, which a plain ArrayDataset serves as views
            return [slice(i, min(i + bs, n)) for i in range(start * bs, len(self) * bs, bs)]
        order = torch.arange(n) if order is None else order
        if self.world_size > 1:  # the full order is kept (and checkpointed): the same on every rank
            order = shard_indices(order, self.rank, self.world_size, self.even)
        return list(order.split(bs)[start:len(self)])  # len(self) leaves out a short last chunk with drop_last

    def __iter__(self) -> Iterator[Any]:
        if self._resume:  # finish the epoch restored by load_state_dict
            self._resume = False
        else:
            self._order, self._batch = self._epoch_order(self.epoch), 0
            self._key = self._epoch_key(self.epoch)
            self.epoch += 1
        return self._batches(self._chunks(self._order, self._batch), self._key)

    def _batches(self, chunks: Sequence[Tensor | slice], key: EpochKey) -> Iterator[Any]:
        loaded = (self._load_parallel(chunks, key) if self.n_workers
                  else (_load(self.ds, idx, self.collate_fn, key) for idx in chunks))
        for batch in loaded:
            self._batch += 1
            batch = self._tfm(batch) if self.batch_tfms else batch
            yield _pin(batch) if self.pin_memory else batch

    def _tfm(self, batch: Any) -> Any:
        xb = batch[0] if isinstance(batch, (tuple, list)) else batch
        for f in self.batch_tfms:
            xb = f(xb)
        return (xb, *batch[1:]) if isinstance(batch, (tuple, list)) else xb

    def _workers(self) -> ProcessPoolExecutor:
        """The worker pool, started on first use and kept across epochs while ds, collate_fn and n_workers stay."""
        spec = (self.ds, self.collate_fn, self.n_workers, self.mp_context)
        if self._pool is not None and all(a is b for a, b in zip(spec, self._pool_for)):
            return self._pool
        self.close()
        if self.mp_context.get_start_method() != "fork":  # forked workers inherit ds, the others unpickle it
            self._check_picklable()
        self._pool = ProcessPoolExecutor(self.n_workers, self.mp_context, _init_worker, (self.ds, self.collate_fn))
        self._pool_for = spec
        # a loader dropped without close() still ends its workers; the finalizer holds the pool, not the loader
        self._shutdown = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def _load_parallel(self, chunks: Sequence[Tensor | slice], key: EpochKey) -> Iterator[Any]:
        pool, todo, finished = self._workers(), iter(chunks), False
        try:  # keep a bounded number of batches in flight, not the whole epoch
            pending = deque(pool.submit(_worker_load, idx, key) for idx in islice(todo, self.prefetch * self.n_workers))
            while pending:
                batch = pending.popleft().result()
                idx = next(todo, None)
                if idx is not None:
                    pending.append(pool.submit(_worker_load, idx, key))
                yield batch
            finished = True
        finally:  # on break, error or Ctrl-C: end the workers, dropping queued batches (a new pool starts next time)
            if not finished:
                self.close()

    def close(self) -> None:
        """End the worker processes now (they also end when the loader is garbage-collected); the next epoch with
        workers starts new ones."""
        if self._shutdown is not None:
            self._shutdown()  # shutdown(wait=False, cancel_futures=True), once
        self._pool, self._pool_for, self._shutdown = None, (), None

    def __getstate__(self) -> dict[str, Any]:
        # a copy (pickle, deepcopy) starts its own workers
        return {**self.__dict__, "_pool": None, "_pool_for": (), "_shutdown": None}

    def _check_picklable(self) -> None:
        try:
            pickle.dumps((self.ds, self.collate_fn))
        except Exception as e:
            raise TypeError(f"n_workers={self.n_workers} sends the dataset and collate_fn to worker processes, so "
                            f"both must be picklable, but pickling failed ({type(e).__name__}: {e}). Define them "
                            "at module level (no lambdas, local functions or open files), or use n_workers=0.") from e

    def one_batch(self) -> Any:
        """The first batch of the epoch this loader runs next (with `seed`; else of a fresh random order), batch
        transforms applied, loaded in this process; the loader's progress is left alone."""
        chunk = self._chunks(self._epoch_order(self.epoch), 0)[0]
        batch = _load(self.ds, chunk, self.collate_fn, self._epoch_key(self.epoch))
        return self._tfm(batch) if self.batch_tfms else batch

    def decode(self, xb: Tensor) -> Tensor:
        """Undo the batch transforms that can be undone (those with a `decode`), last first: e.g. back to pixels."""
        for f in reversed(self.batch_tfms):
            if callable(getattr(f, "decode", None)):
                xb = f.decode(xb)
        return xb

    def show_batch(self, path: str | Path | None = None, n: int = 16, ncols: int | None = None) -> Any:
        """A grid of the first `n` images of `one_batch()`, as the model sees them, titled with their labels;
        saved as PNG when `path` is given (see `learnloop.plots.show_batch`)."""
        from ..plots import show_batch  # matplotlib is imported only for plots

        return show_batch(self, path, n=n, ncols=ncols)

    def state_dict(self) -> dict[str, Any]:
        """Progress for exact resume: epochs started, this epoch's index order (None unshuffled), batches yielded,
        and the per-sample seed of this epoch (None unless the dataset draws per-sample randomness)."""
        return {"epoch": self.epoch, "order": self._order, "batch": self._batch,
                "sample_seed": None if self._key is None else self._key[0]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`: the next `iter` yields the rest of that epoch, later epochs as if never stopped."""
        order = state["order"]
        if order is not None and len(order) != len(self.ds):
            raise CheckpointError(f"the saved order covers {len(order)} samples but this dataset has {len(self.ds)}; "
                             "load the state into a loader over the same dataset.")
        self.epoch, self._batch = int(state["epoch"]), int(state["batch"])
        self._order = None if order is None else torch.as_tensor(order, dtype=torch.long)
        sample_seed = state.get("sample_seed")  # absent from checkpoints written before it existed
        self._key = None if sample_seed is None else (int(sample_seed), self.epoch - 1)
        self._resume = self.epoch > 0 and self._batch < len(self)

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.ds)} samples, bs={self.bs}, shuffle={self.shuffle}, "
                f"n_workers={self.n_workers}, {len(self)} batches)")


class DataLoaders:
    """The train and valid loaders of a fit; `test_dl` makes more with the validation pipeline. For dict batches,
    `x_key`/`y_key` name the input and target keys (default: the target is the one key named `label`, `labels`,
    `target`, `targets` or `y`, the input the one other tensor; `x_key` a list of keys gives the model a dict)."""

    def __init__(self, train: Any, valid: Any, pipeline: Pipeline | None = None, vocab: Sequence | None = None, *,
                 x_key: str | Sequence[str] | None = None, y_key: str | None = None) -> None:
        self.train, self.valid, self.x_key, self.y_key = train, valid, x_key, y_key
        self._pipeline, self._vocab = pipeline, vocab  # given by load_learner; else read from the loaders

    @property
    def pipeline(self) -> Pipeline | None:
        """The validation input pipeline (`data.pipeline`): what new items go through to be predicted."""
        return self._pipeline or pipeline_of(self)

    @property
    def vocab(self) -> Sequence | None:
        """The label of each class index: the datasets' vocab (image folders), None when they have none."""
        if self._vocab is not None:
            return self._vocab
        for loader in (self.train, self.valid):
            vocab = getattr(getattr(loader, "ds", None) or getattr(loader, "dataset", None), "vocab", None)
            if vocab is not None:
                return list(vocab)
        return None

    def test_dl(self, items: Sequence[Any], labels: Sequence[int] | None = None, bs: int | None = None,
                n_workers: int = 0, skip_errors: bool = False) -> DataLoader:
        """A loader over `items` (paths, PIL images, arrays, or tensors as the dataset gives them) that decodes,
        crops and normalises them as validation does, `bs` at a time (the valid loader's by default) in `n_workers`
        processes; `labels` (class indices) for a labelled test set. `learn.get_preds(dl)` predicts them."""
        pipeline = self.pipeline
        if pipeline is None:
            raise ValueError("these loaders have no recorded input pipeline (learnloop knows image folders and "
                             "arrays): build a DataLoader over your test data with your own transforms.")
        return DataLoader(ItemsDataset(items, pipeline, labels, skip_errors), bs or pipeline.bs, n_workers=n_workers,
                          batch_tfms=pipeline.batch_tfms)

    @classmethod
    def from_dsets(cls, train_ds: Any, valid_ds: Any, bs: int = 64, drop_last: bool = False,
                   x_key: str | Sequence[str] | None = None, y_key: str | None = None, **kwargs: Any) -> DataLoaders:
        """Train loader shuffled (and `drop_last`), valid loader in order and complete; `kwargs` go to both."""
        return cls(DataLoader(train_ds, bs, shuffle=True, drop_last=drop_last, **kwargs),
                   DataLoader(valid_ds, bs, shuffle=False, **kwargs), x_key=x_key, y_key=y_key)

    def show_batch(self, path: str | Path | None = None, n: int = 16, valid: bool = False) -> Any:
        """`show_batch` of the train loader (augmented, as trained on), or of the valid loader when `valid`."""
        return (self.valid if valid else self.train).show_batch(path, n=n)

    def __repr__(self) -> str:
        return f"DataLoaders(train={self.train!r}, valid={self.valid!r})"

