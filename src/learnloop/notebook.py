"""Jupyter support: detect a notebook kernel and show figures inline, without importing IPython elsewhere."""

from __future__ import annotations

import io
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _shell() -> Any:
    """The running IPython shell, or None; IPython is never imported here, only looked up if already loaded."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (notebook, JupyterLab, VS Code, Colab), not a terminal."""
    shell = _shell()
    if shell is None:
        return False
    # Colab's and VS Code's shells subclass the kernel's ZMQInteractiveShell; IPKernelApp covers other kernels.
    kernel_shell = any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)
    return kernel_shell or "IPKernelApp" in getattr(shell, "config", {})


def figure_png(fig: Figure) -> bytes:
    """`fig` rendered as PNG bytes (Agg, whatever pyplot backend the user chose)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def show_figure(fig: Figure) -> None:
    """Display `fig` in the notebook now, and make it display itself at most once per cell after that.

    The figure is also what the plot call returns: as a cell's last expression IPython would display it
    again (or print `<Figure size ...>` when pyplot is not loaded). Its `_ipython_display_` skips the cell
    that already showed it, and shows it afresh in a later cell (`fig` typed on its own).
    """
    shell = _shell()
    _display_png(fig)
    fig._ipython_display_ = partial(_display_unless_shown, fig, shell.execution_count)


def _display_png(fig: Figure) -> None:
    from IPython.display import display  # loaded already: only called inside a kernel

    display({"image/png": figure_png(fig), "text/plain": repr(fig)}, raw=True)


def _display_unless_shown(fig: Figure, shown_in: int) -> None:
    shell = _shell()
    if shell is None or shell.execution_count != shown_in:
        _display_png(fig)
