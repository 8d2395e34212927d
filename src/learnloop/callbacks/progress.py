"""Progress: a live bar over batches in a terminal or notebook, and one table row per epoch."""

from __future__ import annotations

import sys
from typing import TextIO

from .core import Callback


def format_row(values: list[object], widths: list[int]) -> str:
    """One line of the epoch table: floats to 6 places, columns padded to `widths`."""
    cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in values]
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()


def format_time(seconds: float) -> str:
    """Seconds as mm:ss (h:mm:ss past an hour)."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressCallback(Callback):
    """Prints `epoch  train_loss  valid_loss  <metrics>  time` per epoch; a tqdm bar when interactive."""

    order = 60
    during_lr_find = False
    main_only = True  # rank 0 alone prints and writes under torchrun

    def __init__(self, file: TextIO | None = None, bar: bool | None = None):
        self.file, self.bar = file, bar
        self.show_bar = False  # set per fit; `learn.validate` outside a fit shows no bar

    def before_fit(self):
        self.out = self.file or sys.stdout
        self.show_bar = self.bar if self.bar is not None else _interactive()
        self.header_printed = False

    def before_epoch(self):
        self.n_rows = len(self.history)

    def _before_phase(self):
        if self.show_bar:
            from tqdm.auto import tqdm

            desc = f"epoch {self.epoch} {'train' if self.training else 'valid'}"
            self.pbar = tqdm(total=len(self.dl), desc=desc, leave=False, dynamic_ncols=True)

    before_train = before_validate = _before_phase

    def after_batch(self):
        if self.show_bar:
            self.pbar.update()

    def _after_phase(self):
        if self.show_bar:
            self.pbar.close()

    after_train = after_validate = _after_phase

    def after_fit(self):
        if getattr(self, "pbar", None) is not None:  # a phase cut short by an exception
            self.pbar.close()

    def after_epoch(self):
        if len(self.history) == self.n_rows:  # the epoch was cancelled before it recorded anything
            return
        row = self.history[-1]
        keys = [k for k in row if k not in ("lr",)]
        if not self.header_printed:
            self.widths = [max(len(k), 9 if k != "epoch" else 5) for k in keys]
            print(format_row(keys, self.widths), file=self.out, flush=True)
            self.header_printed = True
        values = [format_time(row[k]) if k == "time" else row[k] for k in keys]
        print(format_row(values, self.widths), file=self.out, flush=True)


def _interactive() -> bool:
    return sys.stderr.isatty() or "ipykernel" in sys.modules
