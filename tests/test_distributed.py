"""DDP: sharding math in-process; then real runs of 2 gloo processes under torchrun, each bounded by a timeout."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchmetrics.classification import MulticlassF1Score
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnloop import Learner
from learnloop import distributed as dist
from learnloop.callbacks import OneCycle
from learnloop.callbacks.ddp import DistributedCallback
from learnloop.data.loader import shard_indices
from learnloop.data.sharding import ShardSampler
from learnloop.data import DataLoader, DataLoaders, datasets
from learnloop.metrics import accuracy
from learnloop.nn import simple_cnn

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "ddp_train.py"
TIMEOUT = 120  # seconds: a hung collective fails the test instead of hanging CI


def run(args: list[str], torchrun: bool = True, timeout: int = TIMEOUT, check: bool = True
        ) -> subprocess.CompletedProcess:
    """Run python (under torchrun with 2 processes) in its own session; kill the whole session on timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun else []
    proc = subprocess.Popen([sys.executable, *launcher, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [*_descendants(proc.pid), proc.pid]:  # torchrun starts its workers in sessions of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"timed out after {timeout}s (a hung collective?):\n{out[-4000:]}")
    assert proc.returncode == 0 or not check, out[-4000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# -- sharding math, no process group -------------------------------------------------------------
def shards(n: int, world_size: int, even: bool, bs: int = 4, **kwargs) -> list[list[int]]:
    """Each rank's indices over one epoch of a DataLoader over range(n)."""
    out = []
    for r in range(world_size):
        dl = DataLoader(TensorDataset(torch.arange(n)), bs, **kwargs)
        dl.set_shard(r, world_size, even)
        batches = [xb[0] for xb in dl]
        assert len(batches) == len(dl)
        out.append([i for xb in batches for i in xb.tolist()])  # a rank may get no sample at all
    return out


@pytest.mark.parametrize("n,world_size", [(10, 2), (11, 2), (11, 3), (2, 3), (37, 4)])
def test_valid_shards_hold_every_sample_exactly_once(n, world_size):
    parts = shards(n, world_size, even=False)
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("n,world_size", [(10, 2), (11, 2), (11, 3), (2, 3), (37, 4)])
def test_train_shards_are_padded_to_equal_lengths(n, world_size):
    parts = shards(n, world_size, even=True, shuffle=True, seed=3)
    per_rank = math.ceil(n / world_size)
    assert [len(p) for p in parts] == [per_rank] * world_size
    flat = [i for p in parts for i in p]
    assert set(flat) == set(range(n)) and len(flat) - n == per_rank * world_size - n  # only the padding repeats


def test_shards_cut_one_shared_order_and_checkpoint_the_full_order():
    """Every rank shards the same seeded permutation; the loader's state holds the full order, not the shard."""
    parts = shards(20, 2, even=True, shuffle=True, seed=7)
    full = torch.randperm(20, generator=torch.Generator().manual_seed(7)).tolist()
    assert parts == [full[0::2], full[1::2]]
    dl = DataLoader(TensorDataset(torch.arange(20)), 4, shuffle=True, seed=7)
    dl.set_shard(1, 2)
    next(iter(dl))
    assert dl.state_dict()["order"].tolist() == full and dl.state_dict()["batch"] == 1


def test_shard_indices_pads_from_the_head_like_distributed_sampler():
    order = torch.arange(5)
    for r in range(3):
        sampler = torch.utils.data.DistributedSampler(range(5), num_replicas=3, rank=r, shuffle=False)
        assert shard_indices(order, r, 3, even=True).tolist() == list(sampler)
    assert shard_indices(order, 1, 3, even=False).tolist() == [1, 4]


def test_shard_sampler_covers_a_torch_dataset_once():
    seen = [i for r in range(3) for i in ShardSampler(range(10), 3, r)]
    assert sorted(seen) == list(range(10)) and len(ShardSampler(range(10), 3, 2)) == 3


def test_set_shard_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank must be in"):
        DataLoader(TensorDataset(torch.arange(4)), 2).set_shard(2, 2)


# -- single process: nothing distributed --------------------------------------------------------
def test_single_process_has_no_distributed_callback_and_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    learn = Learner(torch.nn.Linear(2, 2), TorchDataLoader(TensorDataset(torch.randn(4, 2), torch.zeros(4).long())))
    assert not any(isinstance(cb, DistributedCallback) for cb in learn.cbs)
    t = torch.ones(3)
    assert dist.all_reduce_sum(t) is t and dist.all_reduce_mean(t) is t
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.unwrap(simple_cnn(1, 10).as_torch()).__class__.__name__ == "Sequential"


def test_main_only_callbacks_do_not_run_on_other_ranks(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")  # rank 1 of a world of one: no process group needed to test the dispatch
    learn = Learner(torch.nn.Linear(2, 2), TorchDataLoader(TensorDataset(torch.randn(4, 2), torch.zeros(4).long())))
    learn.fit(1)
    assert capsys.readouterr().out == "" and len(learn.history) == 1
    monkeypatch.setenv("RANK", "0")
    learn.fit(1)
    assert "train_loss" in capsys.readouterr().out


def test_lr_find_under_torchrun_says_it_is_single_process_only(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    dls = TorchDataLoader(TensorDataset(torch.randn(8, 2), torch.zeros(8).long()), batch_size=2)
    learn = Learner(torch.nn.Linear(2, 2), dls, progress=False, device="cpu")
    with pytest.raises(RuntimeError, match="lr_find runs in a single process"):
        learn.lr_find()
    assert not torch.distributed.is_initialized()


# -- two processes under torchrun ------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """tests/ddp_train.py under torchrun with 2 gloo processes: its output folder."""
    out = tmp_path_factory.mktemp("ddp")
    run([str(SCRIPT), str(out)])
    return out


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_both_ranks_end_with_bit_identical_weights(ddp_run):
    assert all(r["d"]["body_moved"] for r in ranks(ddp_run))  # fine_tune's unfrozen body trained, alike on both
    for part in "abd":
        w0, w1 = (torch.load(ddp_run / f"weights{r}_{part}.pt") for r in range(2))
        assert list(w0) == list(w1) and all(torch.equal(w0[k], w1[k]) for k in w0)
    saved = torch.load(ddp_run / "model.pt")["model"]  # learn.save: the user's (unwrapped) model's keys
    assert list(saved) == list(torch.load(ddp_run / "weights0_a.pt"))


@pytest.mark.slow
def test_each_rank_runs_half_the_batches_and_one_cycle_counts_them(ddp_run):
    train_ds, valid_ds = datasets.digits(seed=0)
    per_rank_train = math.ceil(math.ceil(len(train_ds) / 2) / 32)  # 1437 samples -> 719 per rank -> 23 batches
    per_rank_valid = math.ceil(len(valid_ds) / 2 / 32)
    for r in ranks(ddp_run):
        assert (r["rank"], r["world_size"]) == (r["rank"], 2)
        # 2 epochs' validation, then get_preds and validate from a callback: they run the validation phase too
        assert r["n_train"] == 2 * per_rank_train and r["n_valid"] == 4 * per_rank_valid
        assert r["n_lrs"] == 2 * per_rank_train  # the schedule spans each rank's batches...
        n = 2 * per_rank_train  # ...so it ends annealed where a one-cycle over n batches ends
        assert r["last_lr"] == pytest.approx(OneCycle(0.3).scheds["lr"]((n - 1) / n))
        assert r["b"]["n_train"] == per_rank_train and r["b"]["n_valid"] == 3 * math.ceil(len(valid_ds) / 2 / 64)
        assert r["model_is_users"] and r["b"]["loaders_restored"] and r["train_len_after"] == 45


@pytest.mark.slow
def test_valid_figures_are_equal_on_both_ranks_and_to_a_single_process_validate(ddp_run):
    r0, r1 = ranks(ddp_run)
    for key in ("history",):
        strip = [[{k: v for k, v in row.items() if k != "time"} for row in r[key]] for r in (r0, r1)]
        assert strip[0] == strip[1]
    assert r0["b"]["history"][0]["valid_loss"] == r1["b"]["history"][0]["valid_loss"]
    assert r0["validate"] == r1["validate"] and r0["in_fit"] == r1["in_fit"]

    _, valid_ds = datasets.digits(seed=0)
    model = simple_cnn(in_channels=1, n_classes=10, widths=(8, 16))
    learn = Learner(model, DataLoaders(None, DataLoader(valid_ds, 32)), metrics=[accuracy, MulticlassF1Score(10)],
                    device="cpu")
    learn.load(ddp_run / "model.pt", with_opt=False)
    single = learn.validate()
    last = r0["history"][-1]
    assert last["valid_loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert last["valid_accuracy"] == pytest.approx(single["accuracy"], abs=1e-6)
    # torchmetrics synced its state across the ranks in compute: the F1 of the whole valid set on each rank
    assert last["valid_multiclass_f1_score"] == pytest.approx(single["multiclass_f1_score"], abs=1e-6)
    # validate() inside the fit ran on the sharded loader and gathered every rank's predictions
    assert r0["in_fit"]["n_preds"] == len(valid_ds) and r0["in_fit"]["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert r0["in_fit"]["targets_sum"] == int(valid_ds.y.sum())


@pytest.mark.slow
def test_only_rank_zero_prints_the_table_and_writes_files(ddp_run):
    table = (ddp_run / "stdout0.txt").read_text()
    assert table.splitlines()[0].split()[:3] == ["epoch", "train_loss", "valid_loss"]
    assert len(table.splitlines()) == 5  # fit A: a header and 2 epochs, fit B: a header and 1
    assert (ddp_run / "stdout1.txt").read_text() == ""
    rows = (ddp_run / "history.csv").read_text().splitlines()
    assert len(rows) == 3  # one header, two epochs: written once, not once per rank
    assert len(list((ddp_run / "tb").iterdir())) == 1  # one event file


@pytest.mark.slow
def test_the_same_script_runs_in_one_process(tmp_path):
    run([str(SCRIPT), str(tmp_path)], torchrun=False)
    (r,) = [json.loads((tmp_path / "rank0.json").read_text())]
    assert r["world_size"] == 1 and r["n_train"] == 2 * 45 and r["history"][-1]["valid_accuracy"] > 0.5


@pytest.mark.slow
def test_cli_under_torchrun(tmp_path):
    out = run(["-m", "learnloop", "fit", "digits", "--epochs", "1", "--out", str(tmp_path)]).stdout
    assert out.count("learnloop: training") == 1 and out.count("train_loss") == 1  # rank 0 alone reports
    assert {"history.csv", "model.pt", "loss.png", "tb"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_run_instead_of_hanging(tmp_path):
    """Rank 1 raises mid-epoch: it leaves without waiting at the exit barrier, so rank 0's collective fails fast."""
    done = run([str(SCRIPT), str(tmp_path), "--crash"], check=False, timeout=90)
    assert done.returncode != 0 and "rank 1 fails on purpose" in done.stdout


@pytest.mark.slow
def test_a_checkpoint_written_under_ddp_resumes_under_ddp_exactly(ddp_run):
    """Stopped at epoch 1, batch 9 (of each rank's 23), resumed on both ranks from rank 0's last checkpoint:
    the same weights, bit for bit, as the fit never stopped, on each rank; the same history, but for the
    resumed epoch's train_loss: the checkpoint holds rank 0's records of that epoch's first batches, which
    every rank restores (see the README's DDP limits)."""
    for r in range(2):
        w = torch.load(ddp_run / f"weights{r}_c.pt")
        assert all(torch.equal(w["whole"][k], w["resumed"][k]) for k in w["whole"])
    ckpt = torch.load(ddp_run / "last.ckpt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["model"])  # the user's model, not the DDP wrapper
    # the last of the every-5-batches checkpoints (23 + 7 = 30 batches) before the stop: mid-epoch
    assert (ckpt["epoch"], ckpt["iter"]) == (1, 7) and len(ckpt["loader"]["order"]) == 1437  # the full order
    for r in ranks(ddp_run):
        whole, resumed = ([{k: v for k, v in row.items() if k != "time"} for row in r["c"][name]]
                          for name in ("whole", "resumed"))
        assert whole[0] == resumed[0] and whole[1]["valid_loss"] == resumed[1]["valid_loss"]
        assert whole[1]["train_loss"] == pytest.approx(resumed[1]["train_loss"], rel=0.05)
