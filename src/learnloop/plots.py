"""Matplotlib figures, drawn without pyplot (no display needed); each saves a PNG when given a path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["plot_layer_stats"]


def plot_layer_stats(stats: Any, path: str | Path | None = None) -> Figure:
    """Mean, std and near-zero share of each layer's output over batches (a `LayerStats`)."""
    fig = Figure(figsize=(13, 3.5), layout="constrained")
    eps = getattr(stats, "eps", None)
    near_zero = "share near zero" if eps is None else f"share with |x| < {eps:g}"
    panels = [("mean", stats.means), ("std", stats.stds), (near_zero, stats.near_zero)]
    for ax, (title, per_layer) in zip(fig.subplots(1, 3), panels):
        for i, values in enumerate(per_layer):
            ax.plot(values, label=f"layer {i}")
        ax.set_title(title)
        ax.set_xlabel("batch")
    fig.axes[0].legend(fontsize="small")
    if path is not None:
        fig.savefig(path)
    return fig
