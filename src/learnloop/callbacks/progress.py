"""Progress: a live bar over batches and one table row per epoch, as text in a terminal or log file, as
HTML updated in place in a Jupyter notebook.

Output that is not a terminal (a pipe, a file, a CI log) gets plain lines only, with no carriage returns or
colour codes: the epoch table, and during a long epoch a progress line every `every` seconds."""

from __future__ import annotations

import html
import sys
import time
from typing import Any, TextIO

from ..notebook import in_notebook
from .core import Callback


def format_row(values: list[object], widths: list[int]) -> str:
    """One line of the epoch table: floats to 6 places, columns padded to `widths`."""
    return "  ".join(cell.ljust(width) for cell, width in zip(format_cells(values), widths)).rstrip()


def format_cells(values: list[object]) -> list[str]:
    """Cells of the epoch table: floats to 6 places, the rest as `str`."""
    return [f"{v:.6f}" if isinstance(v, float) else str(v) for v in values]


def format_time(seconds: float) -> str:
    """Seconds as mm:ss (h:mm:ss past an hour)."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def column_widths(keys: list[str]) -> list[int]:
    """Widths of the text table's columns: room for the key, and for a float (9) except in `epoch` (5)."""
    return [max(len(k), 9 if k != "epoch" else 5) for k in keys]


def html_table(keys: list[str], rows: list[list[object]]) -> str:
    """The epoch table as an HTML table: a header of `keys`, one `<tr>` per row of values."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in format_cells(r)) + "</tr>" for r in rows)
    return (f'<table border="1" class="dataframe"><thead><tr style="text-align: left;">{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")  # fmt: skip


def html_bar(desc: str, n: int, total: int, elapsed: float) -> str:
    """A progress bar in HTML: `<progress>` plus `desc n/total [elapsed<remaining]`."""
    remaining = elapsed / n * (total - n) if n else 0.0
    return (f'<div><progress value="{n}" max="{total}" style="width: 300px; height: 1em; vertical-align: middle">'
            f"</progress> {html.escape(desc)} {n}/{total} [{format_time(elapsed)}&lt;{format_time(remaining)}]</div>")  # fmt: skip


class ProgressCallback(Callback):
    """Shows `epoch  train_loss  valid_loss  <metrics>  time` per epoch, and a bar over batches when interactive.

    In a terminal: a tqdm bar and a text line per epoch (to `file`, default stdout). In a Jupyter notebook
    (and no `file`): one HTML table that grows by a row per epoch, with a bar under it, updated in place.
    `bar=False` (or a non-interactive stdout, e.g. a log file) leaves the bar out; then a plain line
    (`epoch 0 train: batch 120/1875, 00:30`) every `every` seconds of a phase (0: none) shows it is alive.
    """

    order = 60
    during_lr_find = False
    main_only = True  # rank 0 alone prints and writes under torchrun

    def __init__(self, file: TextIO | None = None, bar: bool | None = None, every: float = 30):
        self.file, self.bar, self.every = file, bar, every
        self.view: TextView | HTMLView | None = None  # set per fit; `learn.validate` outside a fit shows nothing

    def before_fit(self):
        notebook = self.file is None and in_notebook()
        show_bar = self.bar if self.bar is not None else (notebook or _interactive())
        self.view = HTMLView(show_bar) if notebook else TextView(self.file or sys.stdout, show_bar, self.every)

    def before_epoch(self):
        self.n_rows = len(self.history)

    def _before_phase(self):
        if self.view is not None:
            self.view.start_bar(f"epoch {self.epoch} {'train' if self.training else 'valid'}", len(self.dl))

    before_train = before_validate = _before_phase

    def after_batch(self):
        if self.view is not None:
            self.view.advance()

    def _after_phase(self):
        if self.view is not None:
            self.view.end_bar()

    after_train = after_validate = _after_phase

    def after_epoch(self):
        if len(self.history) == self.n_rows:  # the epoch was cancelled before it recorded anything
            return
        row = self.history[-1]
        keys = [k for k in row if k != "lr"]
        self.view.add_row(keys, [format_time(row[k]) if k == "time" else row[k] for k in keys])

    def after_fit(self):
        if self.view is not None:  # also after an exception: close a bar cut short
            self.view.close()
            self.view = None


class FirstBatchClock(Callback):
    """Prints how long it took from `start` (a `time.perf_counter()`) to the fit's first training batch:
    `message` formatted with the seconds."""

    order, main_only = -100, True

    def __init__(self, start: float, message: str = "first batch {:.2f} s after start"):
        self.start, self.message, self.done = start, message, False

    def before_batch(self):
        if self.learn.training and not self.done:
            self.done = True
            print(self.message.format(time.perf_counter() - self.start), flush=True)


class TextView:
    """Terminal and log output: a tqdm bar per phase (without one, a plain line every `every` seconds) and one
    aligned text line per epoch."""

    def __init__(self, out: TextIO, show_bar: bool, every: float = 30):
        self.out, self.show_bar, self.pbar, self.widths = out, show_bar, None, None
        self.every, self.line = every, None  # without a bar: [desc, n, total, start, last printed]

    def start_bar(self, desc: str, total: int) -> None:
        """Open a bar of `total` steps."""
        if self.show_bar:
            from tqdm.auto import tqdm

            self.pbar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
        elif self.every:
            now = time.monotonic()
            self.line = [desc, 0, total, now, now]

    def advance(self) -> None:
        """One step of the open bar; without a bar, a plain line when `every` seconds have passed."""
        if self.pbar is not None:
            self.pbar.update()
        elif self.line is not None:
            self.line[1] += 1
            desc, n, total, start, printed = self.line
            now = time.monotonic()
            if now - printed >= self.every:
                self.line[4] = now
                print(f"{desc}: batch {n}/{total}, {format_time(now - start)}", file=self.out, flush=True)

    def end_bar(self) -> None:
        """Close the open bar, if any."""
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None
        self.line = None

    def add_row(self, keys: list[str], values: list[Any]) -> None:
        """Print the header before the first row, then the row."""
        if self.widths is None:
            self.widths = column_widths(keys)
            print(format_row(keys, self.widths), file=self.out, flush=True)
        print(format_row(values, self.widths), file=self.out, flush=True)

    close = end_bar


class HTMLView:
    """Notebook output: one display (the table, the bar under it) updated in place, at most every 0.2 s."""

    min_interval = 0.2  # seconds between redraws of the bar: each is a message to the notebook's front end

    def __init__(self, show_bar: bool):
        from IPython.display import display  # in a notebook IPython is loaded already

        self.show_bar = show_bar
        self.keys: list[str] = []
        self.rows: list[list[Any]] = []
        self.bar: list[Any] | None = None  # [desc, n, total, start time]
        self.drawn_at = 0.0
        self.handle = display({"text/html": "", "text/plain": ""}, raw=True, display_id=True)

    def _draw(self) -> None:
        # HTML for the notebook; the text table too, for front ends (and conversions) that show plain text.
        html, text = "", ""
        if self.rows:
            widths = column_widths(self.keys)
            html = html_table(self.keys, self.rows)
            text = "\n".join(format_row(row, widths) for row in [self.keys, *self.rows])
        if self.bar:
            html += html_bar(self.bar[0], self.bar[1], self.bar[2], time.perf_counter() - self.bar[3])
        self.handle.update({"text/html": html, "text/plain": text}, raw=True)
        self.drawn_at = time.perf_counter()

    def start_bar(self, desc: str, total: int) -> None:
        """Show an empty bar of `total` steps under the table."""
        if self.show_bar:
            self.bar = [desc, 0, total, time.perf_counter()]
            self._draw()

    def advance(self) -> None:
        """One step of the bar; redrawn when `min_interval` has passed."""
        if self.bar is not None:
            self.bar[1] += 1
            if time.perf_counter() - self.drawn_at >= self.min_interval:
                self._draw()

    def end_bar(self) -> None:
        """Take the bar away."""
        if self.bar is not None:
            self.bar = None
            self._draw()

    def add_row(self, keys: list[str], values: list[Any]) -> None:
        """Add a row to the table (its header from the first row's keys)."""
        self.keys = self.keys or keys
        self.rows.append(values)
        self._draw()

    close = end_bar


def _interactive() -> bool:
    return sys.stderr.isatty()
