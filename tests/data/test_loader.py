import io
import os
import multiprocessing
import signal
import sys
import time
from collections import namedtuple
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnloop.data import ArrayDataset, DataLoader, DataLoaders, Normalize, collate


def flat(batches: list) -> list[int]:
    return [i for xb, _ in batches for i in xb.tolist()]


def pairs(n: int) -> list[tuple[int, int]]:
    """A plain list dataset: sample i is (i, 10 * i)."""
    return [(i, 10 * i) for i in range(n)]


class Squares:
    """A picklable, sample-by-sample dataset: (numpy row, label)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.full(3, i * i, dtype=np.float32), i % 7


class Boom(Squares):
    """Raises at one index."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i == 13:
            raise ValueError(f"bad sample {i}")
        return super().__getitem__(i)


class Unpicklable(Squares):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.f = lambda i: i


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging forever."""
    def on_alarm(*_):
        raise TimeoutError(f"took more than {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 70), bs=st.integers(1, 80), drop_last=st.booleans(), shuffle=st.booleans(),
       as_list=st.booleans(), seed=st.integers(0, 1000))
def test_every_sample_once_per_epoch(n, bs, drop_last, shuffle, as_list, seed):
    if drop_last and n < bs:
        with pytest.raises(ValueError, match="no batches"):
            DataLoader(pairs(n), bs, drop_last=True)
        return
    ds = pairs(n) if as_list else ArrayDataset(torch.arange(n), torch.arange(n) * 10)
    dl = DataLoader(ds, bs, shuffle=shuffle, drop_last=drop_last, seed=seed)
    for _ in range(2):
        batches = list(dl)
        assert len(batches) == len(dl) == (n // bs if drop_last else -(-n // bs))
        assert all(len(xb) == bs for xb, _ in batches[:-1]) and 1 <= len(batches[-1][0]) <= bs
        seen = flat(batches)
        assert len(set(seen)) == len(seen)  # no repeats
        assert sorted(seen) == list(range(n)) if not drop_last else len(seen) == n // bs * bs
        for xb, yb in batches:  # x and y stay paired
            assert torch.equal(yb, xb * 10)
        if not shuffle:
            assert seen == list(range(len(seen)))


def test_reshuffles_every_epoch_and_seed_reproduces():
    ds = ArrayDataset(torch.arange(100), torch.arange(100))
    dl = DataLoader(ds, 10, shuffle=True, seed=1)
    epochs = [flat(dl) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2] and all(sorted(e) == list(range(100)) for e in epochs)
    again = DataLoader(ds, 10, shuffle=True, seed=1)
    assert [flat(again) for _ in range(3)] == epochs
    assert flat(DataLoader(ds, 10, shuffle=True, seed=2)) != epochs[0]
    torch.manual_seed(5)
    a = [flat(DataLoader(ds, 10, shuffle=True)) for _ in range(2)]
    torch.manual_seed(5)
    assert [flat(DataLoader(ds, 10, shuffle=True)) for _ in range(2)] == a


def test_attributes_and_plain_list_dataset():
    ds = pairs(5)
    dl = DataLoader(ds, 2, drop_last=True, seed=3)
    assert (dl.ds, dl.dataset, dl.bs, dl.shuffle, dl.n_workers, dl.drop_last, dl.seed, dl.collate_fn) == \
        (ds, ds, 2, False, 0, True, 3, collate)
    xb, yb = next(iter(dl))
    assert xb.tolist() == [0, 1] and yb.tolist() == [0, 10] and xb.dtype == torch.int64


def test_array_dataset_fast_path_gathers_whole_batches(monkeypatch):
    ds = ArrayDataset(torch.arange(20.0).view(10, 2), torch.arange(10))
    monkeypatch.setattr(ArrayDataset, "__getitem__", lambda self, i: pytest.fail("per-sample access"))
    xb, yb = next(iter(DataLoader(ds, 4, shuffle=True, seed=0)))
    assert xb.shape == (4, 2) and torch.equal(xb[:, 0], yb * 2.0)
    for x in (torch.randn(10, 3).bfloat16(), torch.randn(10, 3, requires_grad=True), torch.randn(3, 10).t()):
        ds = ArrayDataset(x, torch.arange(10))
        for idx, (xb, yb) in zip(torch.randperm(10, generator=torch.Generator().manual_seed(0)).split(4),
                                 DataLoader(ds, 4, shuffle=True, seed=0)):
            assert torch.equal(xb, x[idx]) and torch.equal(yb, idx) and xb.dtype == x.dtype


def test_transforms_on_dataset_and_loader():
    x, y = torch.arange(12.0).view(6, 2), torch.arange(6)
    per_sample = ArrayDataset(x, y, tfm_x=lambda s: s.sum(), tfm_y=lambda t: t + 100)
    xb, yb = next(iter(DataLoader(per_sample, 6)))
    assert xb.tolist() == [1.0, 5.0, 9.0, 13.0, 17.0, 21.0] and yb.tolist() == list(range(100, 106))
    for ds in (ArrayDataset(x, y), list(zip(x, y))):  # fast path and sample by sample
        dl = DataLoader(ds, 3, batch_tfms=[lambda b: b * 2, lambda b: b + 1])
        (xb, yb), _ = list(dl)
        assert torch.equal(xb, x[:3] * 2 + 1) and torch.equal(yb, y[:3])
    norm = Normalize.from_batch(x)
    xb, _ = next(iter(DataLoader(ArrayDataset(x, y), 6, batch_tfms=norm)))
    assert torch.allclose(xb.mean(0), torch.zeros(2), atol=1e-6)


def test_collate_nested_structures():
    Point = namedtuple("Point", "a b")
    samples = [{"img": np.ones((2, 2), np.uint8) * i, "meta": (i, 0.5 * i, f"s{i}"),
                "p": Point(torch.tensor([i]), [i, -i])} for i in range(3)]
    b = collate(samples)
    assert b["img"].shape == (3, 2, 2) and b["img"].dtype == torch.uint8 and b["img"][2].sum() == 8
    n, f, s = b["meta"]
    assert n.tolist() == [0, 1, 2] and n.dtype == torch.int64 and f.dtype == torch.float32 and s == ["s0", "s1", "s2"]
    assert isinstance(b["p"], Point) and b["p"].a.shape == (3, 1)
    assert [t.tolist() for t in b["p"].b] == [[0, 1, 2], [0, -1, -2]]
    assert collate([np.float64(1.5), np.float64(2.5)]).tolist() == [1.5, 2.5]
    with pytest.raises(TypeError, match="collate_fn"):
        collate([object(), object()])
    with pytest.raises(ValueError):
        collate([(1, 2), (1, 2, 3)])


def test_workers_give_the_same_batches():
    for ds in (Squares(50), ArrayDataset(torch.randn(50, 3), torch.arange(50))):
        kw = dict(bs=8, shuffle=True, seed=4, batch_tfms=lambda b: b - 1)
        serial, parallel = DataLoader(ds, **kw), DataLoader(ds, n_workers=2, **kw)
        for _ in range(2):
            for (x0, y0), (x2, y2) in zip(serial, parallel, strict=True):
                assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_worker_error_reaches_main_process_fast():
    t = time.perf_counter()
    with deadline(20), pytest.raises(RuntimeError) as info:
        list(DataLoader(Boom(64), 4, n_workers=2))
    assert time.perf_counter() - t < 10
    msg = str(info.value)
    assert "ValueError: bad sample 13" in msg and "ds[13]" in msg and "Worker traceback" in msg
    with pytest.raises(ValueError, match="bad sample 13") as info:  # in-process: the original exception
        list(DataLoader(Boom(64), 4))
    assert sys.version_info < (3, 11) or "ds[13]" in info.value.__notes__[0]


def test_early_break_shuts_the_pool_down():
    with deadline(20):
        for _ in DataLoader(Squares(400), 4, n_workers=2):
            break
        t = time.perf_counter()
        while multiprocessing.active_children() and time.perf_counter() - t < 10:
            time.sleep(0.05)
    assert not multiprocessing.active_children()


def test_unpicklable_dataset_error_names_the_fix():
    with pytest.raises(TypeError, match="picklable.*module level"):
        list(DataLoader(Unpicklable(8), 4, n_workers=2, mp_context="spawn"))


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_bs(bad):
    with pytest.raises(ValueError, match="bs must be a positive integer"):
        DataLoader(pairs(4), bad)


def test_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        DataLoader([], 4)


@pytest.mark.parametrize("seed", [3, None])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("stop", [3, 7])  # mid-epoch, and right after the epoch's last batch
def test_exact_resume(seed, shuffle, stop):
    ds = ArrayDataset(torch.arange(50), torch.arange(50))  # 7 batches of 8, the last short
    make = lambda: DataLoader(ds, 8, shuffle=shuffle, seed=seed)  # noqa: E731
    torch.manual_seed(0)
    dl = make()
    whole = [xb.tolist() for _ in range(5) for xb, _ in dl]

    torch.manual_seed(0)
    dl = make()
    got = [xb.tolist() for _ in range(2) for xb, _ in dl]
    it = iter(dl)
    got += [next(it)[0].tolist() for _ in range(stop)]
    buf = io.BytesIO()
    torch.save({"loader": dl.state_dict(), "rng": torch.get_rng_state()}, buf)  # what a checkpoint holds
    del dl, it
    torch.rand(100)  # the killed run moved the global RNG on

    buf.seek(0)
    ckpt = torch.load(buf)
    torch.set_rng_state(ckpt["rng"])
    dl = make()
    dl.load_state_dict(ckpt["loader"])
    assert dl.state_dict()["batch"] == stop and dl.state_dict()["epoch"] == 3
    got += [xb.tolist() for _ in range(2 if stop == 7 else 3) for xb, _ in dl]
    assert got == whole


def test_load_state_dict_checks_the_dataset():
    dl = DataLoader(pairs(10), 4, shuffle=True)
    iter(dl)
    with pytest.raises(ValueError, match="same dataset"):
        DataLoader(pairs(11), 4).load_state_dict(dl.state_dict())


def test_dataloaders_from_dsets_forwards_options():
    dls = DataLoaders.from_dsets(pairs(10), pairs(5), bs=4, drop_last=True, seed=7, n_workers=0, collate_fn=collate)
    assert dls.train.shuffle and not dls.valid.shuffle
    assert (dls.train.bs, dls.valid.bs, dls.train.seed, dls.valid.seed) == (4, 4, 7, 7)
    assert dls.train.drop_last and not dls.valid.drop_last  # validation always sees every sample
    assert len(dls.train) == 2 and len(dls.valid) == 2
    assert sorted(flat(dls.valid)) == list(range(5))


class Pids(Squares):
    """Sample i is (pid of the process that loaded it, i); counts the samples started in `started`."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.started = multiprocessing.get_context("fork").Value("i", 0)

    def __getitem__(self, i: int) -> tuple[int, int]:
        with self.started.get_lock():
            self.started.value += 1
        return os.getpid(), i


def test_worker_pool_persists_across_epochs_until_close():
    dl = DataLoader(Pids(40), 4, shuffle=True, seed=0, n_workers=2, mp_context="fork")
    with deadline(30):
        pids = [set(torch.cat([xb for xb, _ in dl]).tolist()) for _ in range(3)]
        assert pids[0] == pids[1] == pids[2] and len(pids[0]) <= 2 and os.getpid() not in pids[0]
        dl.close()
        t = time.perf_counter()
        while multiprocessing.active_children() and time.perf_counter() - t < 10:
            time.sleep(0.05)
        assert not multiprocessing.active_children()
        assert set(torch.cat([xb for xb, _ in dl]).tolist()).isdisjoint(pids[0])  # a new pool after close()


@pytest.mark.parametrize("prefetch", [1, 3])
def test_prefetch_bounds_the_batches_in_flight(prefetch):
    ds = Pids(400)
    dl = DataLoader(ds, 4, n_workers=2, prefetch=prefetch, mp_context="fork")
    with deadline(30):
        it = iter(dl)
        next(it)
        time.sleep(0.5)  # time enough for unbounded workers to run far ahead
        assert ds.started.value <= (prefetch * 2 + 1) * 4  # the first batch's slot is refilled once it is taken
        it.close()
    with pytest.raises(ValueError, match="prefetch must be"):
        DataLoader(ds, 4, prefetch=0)


class SigintHandlers:
    """Each sample: 1 when its process ignores SIGINT, else 0."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.tensor(int(signal.getsignal(signal.SIGINT) is signal.SIG_IGN))


def test_workers_leave_ctrl_c_to_the_main_process():
    # a terminal's Ctrl-C reaches every process of the job; only the main one may act on it
    assert torch.cat(list(DataLoader(SigintHandlers(), 4, n_workers=2))).tolist() == [1] * 8
