"""The script `tests/test_distributed.py` runs under torchrun (and in one process): digits, two fits.

Part A: learnloop's loaders and CNN (a learnloop Module, into DDP through its torch view), one-cycle, a CSV
and a TensorBoard logger, the default progress table. Part B, in the same process group: a torch MLP on
torch DataLoaders. Part C: a fit stopped mid-epoch with a Checkpoint, resumed by a fresh Learner, against the
same fit never stopped. Part D: fine_tune (frozen, then unfrozen inside the fit). Each rank writes OUT/rank<R>.json (what it saw) and OUT/weights<R>_<part>.pt; its stdout
goes to OUT/stdout<R>.txt. Usage: python tests/ddp_train.py OUT [--crash] (--crash: rank 1 raises mid-fit)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassF1Score

torch.set_num_threads(1)  # two processes share two cores with everything else

from learnloop import Callback, CancelFitException, Learner  # noqa: E402
from learnloop import distributed as dist  # noqa: E402
from learnloop.callbacks import Checkpoint, CSVLogger, TensorBoardCallback  # noqa: E402
from learnloop.data import DataLoaders, datasets  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402
from learnloop.nn import simple_cnn  # noqa: E402


class CountBatches(Callback):
    """Counts train and valid batches; at the last epoch's end, validates inside the fit (sharded loaders)."""

    def __init__(self):
        self.train = self.valid = 0
        self.in_fit = None

    def after_batch(self):
        if self.training:
            self.train += 1
        else:
            self.valid += 1

    def after_epoch(self):
        if self.epoch == self.n_epoch - 1:
            preds, targets = self.learn.get_preds()
            self.in_fit = {**self.learn.validate(), "n_preds": len(preds), "targets_sum": int(targets.sum())}


class CrashOnRank1(Callback):
    """Raises on rank 1 at its fourth training batch, while rank 0 goes on into the next all-reduce."""

    def after_batch(self):
        if self.training and self.iter == 3 and dist.rank() == 1:
            raise ValueError("rank 1 fails on purpose")


class StopAt(Callback):
    """Stops the fit (on every rank alike) after training batch `it` of epoch `epoch`."""

    def __init__(self, epoch: int, it: int):
        self.at = (epoch, it)

    def after_batch(self):
        if self.training and (self.epoch, self.iter) == self.at:
            raise CancelFitException()


def resume_run(out: Path, train_ds, valid_ds) -> dict:
    """Part C: weights of a fit never stopped, and of one stopped at epoch 1 batch 9 then resumed."""

    def learner(cbs=()):
        torch.manual_seed(1)
        dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=32, seed=0)
        return Learner(simple_cnn(in_channels=1, n_classes=10, widths=(8, 16)), dls, lr=0.3, cbs=list(cbs),
                       progress=False, device="cpu")

    whole = learner()
    whole.fit_one_cycle(2)
    ckpt = out / "last.ckpt"
    learner([Checkpoint(ckpt, every_n_batches=5), StopAt(1, 9)]).fit_one_cycle(2)
    resumed = learner()
    resumed.fit_one_cycle(2, resume=ckpt)
    torch.save({"whole": whole.model.state_dict(), "resumed": resumed.model.state_dict()},
               out / f"weights{dist.rank()}_c.pt")
    return {"whole": whole.history, "resumed": resumed.history}


def main(out: Path, crash: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    r = dist.rank()
    sys.stdout = open(out / f"stdout{r}.txt", "w")  # the progress table goes to sys.stdout
    train_ds, valid_ds = datasets.digits(seed=0)

    # Part A: learnloop all the way.
    torch.manual_seed(r)  # different inits on each rank: DDP must broadcast rank 0's
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=32, seed=0)
    model = simple_cnn(in_channels=1, n_classes=10, widths=(8, 16))
    count = CountBatches()
    loggers = [CSVLogger(out / "history.csv"), TensorBoardCallback(out / "tb")]
    f1 = MulticlassF1Score(num_classes=10)  # stateful: each rank updates on its shard, compute syncs the ranks
    learn = Learner(model, dls, lr=0.3, metrics=[accuracy, f1],
                    cbs=[count, *loggers, *([CrashOnRank1()] if crash else [])], device="cpu")
    learn.fit_one_cycle(2)
    learn.save(out / "model.pt")
    torch.save(learn.model.state_dict(), out / f"weights{r}_a.pt")
    result = {
        "rank": r, "world_size": dist.world_size(), "history": learn.history, "n_train": count.train,
        "n_valid": count.valid, "n_lrs": len(learn.recorder.lrs), "last_lr": learn.recorder.lrs[-1],
        "in_fit": count.in_fit, "validate": learn.validate(), "model_is_users": learn.model is model,
        "train_len_after": len(dls.train),
    }  # fmt: skip

    # Part B: torch model, torch loaders, the same process group.
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    tl = torch.utils.data.DataLoader(train_ds, batch_size=32, shuffle=True)
    vl = torch.utils.data.DataLoader(valid_ds, batch_size=64)
    count_b = CountBatches()
    learn_b = Learner(mlp, DataLoaders(tl, vl), lr=0.1, metrics=[accuracy], cbs=[count_b], device="cpu")
    learn_b.fit(1)
    torch.save(learn_b.model.state_dict(), out / f"weights{r}_b.pt")
    result["b"] = {"history": learn_b.history, "n_train": count_b.train, "n_valid": count_b.valid,
                   "loaders_restored": learn_b.dls.train is tl and learn_b.dls.valid is vl, "in_fit": count_b.in_fit}
    result["c"] = resume_run(out, train_ds, valid_ds)

    # Part D: fine_tune, whose unfreeze inside the fit makes DDP wrap again (else the body's grads aren't synced).
    torch.manual_seed(0)
    mlp_d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    body = mlp_d[1].weight.detach().clone()
    dls_d = DataLoaders.from_dsets(train_ds, valid_ds, bs=32, seed=0)
    Learner(mlp_d, dls_d, progress=False, device="cpu").fine_tune(1, base_lr=0.1)
    torch.save(mlp_d.state_dict(), out / f"weights{r}_d.pt")
    result["d"] = {"body_moved": not torch.equal(body, mlp_d[1].weight)}
    (out / f"rank{r}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), crash="--crash" in sys.argv[2:])
