"""The kill test's training script: digits, fit_one_cycle, Checkpoint(every_n_batches=5), optional resume.

`python resume_script.py CKPT OUT [--kill-at N] [--resume]` trains and saves the final model state_dict and
history to OUT; `--kill-at N` SIGKILLs the process half-way through global training batch N (after its
backward, before its step), as a crash would. Run by tests/callbacks/test_checkpoint.py.
"""

from __future__ import annotations

import argparse
import os
import signal
from functools import partial

import torch

torch.set_num_threads(1)  # bit-reproducible across processes

from learnloop import Callback, Learner  # noqa: E402
from learnloop.callbacks import Checkpoint  # noqa: E402
from learnloop.data import DataLoaders  # noqa: E402
from learnloop.data.datasets import digits  # noqa: E402
from learnloop.metrics import accuracy  # noqa: E402
from learnloop.optim import SGD  # noqa: E402


class KillAt(Callback):
    """SIGKILLs this process after the backward of global training batch `at`."""

    def __init__(self, at: int):
        self.at = at

    def after_backward(self):
        if self.epoch * self.n_iter + self.iter == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt")
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    train_ds, valid_ds = digits()
    dls = DataLoaders.from_dsets(train_ds, valid_ds, bs=64)  # shuffled from the global torch RNG (seed=None)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Dropout(0.1), torch.nn.Linear(32, 10))  # dropout draws from the RNG too
    learn = Learner(model, dls, opt_func=partial(SGD, momentum=0.9), metrics=[accuracy], progress=False)
    cbs = [Checkpoint(args.ckpt, every_n_batches=5)] + ([KillAt(args.kill_at)] if args.kill_at is not None else [])
    learn.fit_one_cycle(2, 0.1, cbs=cbs, resume=args.ckpt if args.resume else None)
    history = [{k: v for k, v in row.items() if k != "time"} for row in learn.history]
    torch.save({"model": learn.model.state_dict(), "history": history, "losses": learn.recorder.losses}, args.out)


if __name__ == "__main__":
    main()
