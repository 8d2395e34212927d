"""Notebooks: examples/notebook.ipynb run in a real Jupyter kernel shows an HTML table and one image per plot call."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).parents[1] / "examples" / "notebook.ipynb"
N_EPOCH = 5  # the notebook's fit_one_cycle(5, ...)
PLOT_CALL = re.compile(r"\.plot\w*\(")


class TableRows(HTMLParser):
    """The header cells and body rows (lists of cell texts) of the HTML tables in a document."""

    def __init__(self, html: str):
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._in, self._cell = None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("thead", "tbody"):
            self._in = tag
        elif tag == "tr" and self._in == "tbody":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            (self.header if self._in == "thead" else self.rows[-1]).append(self._cell)
            self._cell = None


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def fit_cell(nb):
    (cell,) = [c for c in code_cells(nb) if "fit_one_cycle" in c.source]
    return cell


def assert_outputs_as_a_user_sees_them(nb) -> None:
    """One image per plot call, the epoch table as HTML (a row per epoch), no tqdm text, no error."""
    for cell in code_cells(nb):
        kinds = [out.output_type for out in cell.outputs]
        assert "error" not in kinds, cell.source
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert len(images) == len(PLOT_CALL.findall(cell.source)), cell.source
        for out in cell.outputs:
            assert "\r" not in out.get("text", ""), f"carriage returns (a text progress bar) in {cell.source!r}"
            assert not out.get("data", {}).get("text/plain", "").startswith("<Figure") or "image/png" in out.data
    (table,) = [out for out in fit_cell(nb).outputs if "text/html" in out.get("data", {})]
    parsed = TableRows(table.data["text/html"])
    assert parsed.header == ["epoch", "train_loss", "valid_loss", "valid_accuracy", "time"]
    assert [row[0] for row in parsed.rows] == [str(e) for e in range(N_EPOCH)]
    assert float(parsed.rows[-1][3]) > 0.9  # the CNN learned digits
    assert "<progress" not in table.data["text/html"]  # the bar is gone once the fit ended
    assert table.data["text/plain"].splitlines()[0].split() == parsed.header  # a text table for text front ends


def test_the_stored_notebook_shows_what_a_user_sees():
    assert_outputs_as_a_user_sees_them(nbformat.read(NOTEBOOK, as_version=4))


class RecordingClient(nbclient.NotebookClient):
    """Keeps every `update_display_data` message: the in-place updates of the progress display."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates: list[tuple[int, dict]] = []

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data":
            self.updates.append((cell_index, msg["content"]))
        return super().process_message(msg, cell, cell_index)


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs this interpreter (with learnloop importable), whatever kernels are installed."""
    spec = tmp_path / "kernels" / "learnloop-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "learnloop test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread on shared cores
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own default: matplotlib-inline
    return "learnloop-test"


@pytest.mark.slow
def test_the_notebook_runs_in_a_kernel_with_live_html_progress_and_one_image_per_plot(kernel_name, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    run = copy.deepcopy(nb)
    # Users often turn pyplot's inline backend on: it must not show learnloop's figures a second time.
    run.cells.insert(1, nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt"))
    # A figure kept in a variable shows when the plot is made, and again when typed in a later cell.
    run.cells += [nbformat.v4.new_code_cell("fig = learn.recorder.plot_loss()\nfig.axes[0].get_title()"),
                  nbformat.v4.new_code_cell("fig")]  # fmt: skip
    client = RecordingClient(run, timeout=600, kernel_name=kernel_name, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    *cells, kept, shown_again = run.cells
    assert_outputs_as_a_user_sees_them(nbformat.v4.new_notebook(cells=cells))
    assert [out.output_type for out in kept.outputs] == ["display_data", "execute_result"]
    assert [out.output_type for out in shown_again.outputs] == ["display_data"]
    assert "image/png" in shown_again.outputs[0].data

    # The fit's table grew in place, one display updated a row per epoch, the bar moving under it.
    fit_index = run.cells.index(fit_cell(run))
    updates = [content for index, content in client.updates if index == fit_index]
    assert len({u["transient"]["display_id"] for u in updates}) == 1
    n_rows = [len(TableRows(u["data"]["text/html"]).rows) for u in updates]
    assert n_rows == sorted(n_rows) and sorted(set(n_rows)) == list(range(N_EPOCH + 1))
    assert any("<progress" in u["data"]["text/html"] for u in updates)
    assert [c.source for c in code_cells(nb)] == [c.source for c in code_cells(run)[1:-2]]  # the same notebook


def test_a_script_imports_neither_ipython_nor_mlflow_and_plots_need_no_display(tmp_path):
    code = (
        "import sys, torch\n"
        "from learnloop import Learner\n"
        "learn = Learner(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),"
        " [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))] * 4, progress=True)\n"
        "learn.fit(1)\n"
        f"learn.recorder.plot_loss({str(tmp_path / 'loss.png')!r})\n"
        "import matplotlib\n"
        "print(sorted(m for m in ('IPython', 'mlflow', 'matplotlib.pyplot') if m in sys.modules), matplotlib.get_backend())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}  # no DISPLAY, no MPLBACKEND
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    *_, last = result.stdout.splitlines()
    assert last.startswith("[] ")  # nothing optional imported, pyplot never loaded
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
