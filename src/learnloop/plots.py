"""Matplotlib figures, drawn without pyplot (no display needed); each saves a PNG when given a path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_lr_find", "plot_sched"]


def plot_lr_find(
    lrs: Sequence[float], losses: Sequence[float], suggestions: Mapping[str, float], path: str | Path | None = None
) -> Figure:
    """An LR finder's loss vs lr on a log x axis, each suggested lr marked on the curve."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses)
    for (rule, lr), marker in zip(suggestions.items(), "o^sDv*"):
        if lr == lr and lrs:  # NaN when there were too few points
            loss = np.interp(np.log(lr), np.log(lrs), losses)  # where the curve is at that lr
            ax.plot(lr, loss, marker, markersize=8, label=f"{rule}: {lr:.2g}")
    ax.set_xscale("log")
    if len(losses) > 1:  # frame the descent: the climb past the minimum would squash it flat
        lowest = int(np.argmin(losses))
        low, high = losses[lowest], max(losses[: lowest + 1])
        pad = 0.1 * (high - low) or 0.1 * abs(low) or 0.1
        ax.set_ylim(low - pad, high + 2 * pad)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (smoothed)")
    if suggestions:
        ax.legend()
    if path is not None:
        fig.savefig(path)
    return fig


def plot_sched(values: Mapping[str, Sequence[float]], path: str | Path | None = None) -> Figure:
    """Each hyper-parameter's value per training batch, one panel each (e.g. `recorder.hps`)."""
    fig = Figure(figsize=(4.5 * max(len(values), 1), 3.5), layout="constrained")
    axes = fig.subplots(1, max(len(values), 1), squeeze=False)[0]
    for ax, (name, per_batch) in zip(axes, values.items()):
        ax.plot(per_batch)
        ax.set_title(name)
        ax.set_xlabel("training batch")
    if path is not None:
        fig.savefig(path)
    return fig
