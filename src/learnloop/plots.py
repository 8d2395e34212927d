"""Pictures of training: matplotlib figures, returned and saved as PNG when given a path.

Figures are built with `matplotlib.figure.Figure`, not pyplot, so no display or GUI backend is needed,
the user's pyplot backend is neither chosen nor changed, and figures are freed when dropped. In a
Jupyter notebook each plot call shows its figure inline, once (`show=False` builds it without showing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .notebook import in_notebook, show_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PathLike = str | os.PathLike | None


def _figure(n_panels: int = 1, panel_size: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure  # imported on first plot: it costs ~0.5 s

    width, height = panel_size
    fig = Figure(figsize=(width * n_panels, height), dpi=100)
    return fig, list(fig.subplots(1, n_panels, squeeze=False)[0])


def _finish(fig: Figure, path: PathLike, show: bool) -> Figure:
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    if show and in_notebook():
        show_figure(fig)
    return fig


def smooth(values: Sequence[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (so early values are not pulled toward 0)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def _require_history(learn: Any, what: str) -> list[dict]:
    if not learn.history:
        raise ValueError(f"Nothing to plot for {what}: learn.history is empty. Train first, e.g. learn.fit(3).")
    return learn.history


def plot_loss(learn: Any, path: PathLike = None, skip_start: int = 0, beta: float = 0.9, show: bool = True) -> Figure:
    """Train loss per batch (faint raw, solid smoothed) and valid loss per epoch, for the last fit."""
    losses, iters = learn.recorder.losses, learn.recorder.iters
    if not losses:
        raise ValueError("Nothing to plot: learn.recorder.losses is empty. Train first, e.g. learn.fit(3).")
    fig, (ax,) = _figure()
    xs = range(skip_start, len(losses))
    ax.plot(xs, losses[skip_start:], color="C0", alpha=0.3, linewidth=0.8, label="train (per batch)")
    ax.plot(xs, smooth(losses, beta)[skip_start:], color="C0", label="train (smoothed)")
    rows = learn.history[len(learn.history) - len(iters) :] if iters else []  # this fit's epochs
    valid = [(i, row["valid_loss"]) for i, row in zip(iters, rows) if "valid_loss" in row and i > skip_start]
    if valid:
        ax.plot(*zip(*valid), "o-", color="C1", label="valid (per epoch)")
    ax.set(xlabel="training batch", ylabel="loss", title="Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path, show)


def plot_metrics(learn: Any, path: PathLike = None, show: bool = True) -> Figure:
    """One panel for train/valid loss and one per metric, against epoch, from `learn.history`."""
    history = _require_history(learn, "plot_metrics")
    metrics = [k for k in history[-1] if k.startswith("valid_") and k != "valid_loss"]
    fig, axes = _figure(1 + len(metrics), panel_size=(5.0, 4.0))
    xs = list(range(len(history)))  # running index: `epoch` restarts at 0 with each fit

    def draw(ax: Axes, key: str, label: str) -> None:
        points = [(x, row[key]) for x, row in zip(xs, history) if key in row]
        if points:
            ax.plot(*zip(*points), "o-", label=label)

    draw(axes[0], "train_loss", "train")
    draw(axes[0], "valid_loss", "valid")
    axes[0].set(title="loss", ylabel="loss")
    axes[0].legend()
    for ax, key in zip(axes[1:], metrics):
        draw(ax, key, "valid")
        ax.set(title=key[len("valid_") :], ylabel=key)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return _finish(fig, path, show)


def plot_activation_stats(stats: Any, path: PathLike = None, show: bool = True) -> Figure:
    """Per layer over training batches: output mean, std, share near zero (an `ActivationStats` or learner)."""
    stats = getattr(stats, "activation_stats", stats)  # a learner holds it at .activation_stats
    if stats.layer_stats is None or not any(stats.layer_stats.records):
        raise ValueError("Nothing to plot: ActivationStats recorded no batches. Fit with it first.")
    return plot_layer_stats(stats.layer_stats, path, names=stats.names, every=stats.every, show=show)


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Counts (targets x predicted classes) from scores `preds` (N, C) or class indices `preds` (N,)."""
    predicted = preds.argmax(dim=-1) if preds.ndim > 1 else preds
    n = n_classes or (preds.shape[-1] if preds.ndim > 1 else int(max(predicted.max(), targets.max())) + 1)
    flat = targets.long().flatten() * n + predicted.long().flatten()
    return torch.bincount(flat.cpu(), minlength=n * n).reshape(n, n)


def plot_confusion(
    learn: Any,
    path: PathLike = None,
    dl: Iterable | None = None,
    labels: Sequence[str] | None = None,
    normalize: bool = False,
    show: bool = True,
) -> Figure:
    """Confusion matrix of the model on `dl` (the valid loader by default): rows actual, columns predicted."""
    preds, targets = learn.get_preds(dl)
    return plot_confusion_matrix(confusion_matrix(preds, targets), path, labels, normalize, show)


def plot_confusion_matrix(cm: torch.Tensor, path: PathLike = None, labels: Sequence[str] | None = None,
                          normalize: bool = False, show: bool = True) -> Figure:
    """A confusion matrix of counts (`confusion_matrix`) drawn with its numbers: rows actual, columns predicted."""
    cm = cm.float()
    if normalize:
        cm = cm / cm.sum(dim=1, keepdim=True).clamp(min=1)
    n = cm.shape[0]
    labels = [str(i) for i in range(n)] if labels is None else list(labels)
    if len(labels) != n:
        raise ValueError(f"Got {len(labels)} labels for {n} classes: pass one label per class.")
    size = max(4.0, 0.5 * n + 2)
    fig, (ax,) = _figure(panel_size=(size, size))
    ax.imshow(cm.numpy(), cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="actual", title="Confusion matrix")
    ax.set_xticklabels(labels, rotation=90 if n > 10 else 0)
    ax.set_yticklabels(labels)
    high = cm.max().item() / 2  # white text on dark cells
    for i in range(n):
        for j in range(n):
            v = cm[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{v:.0f}", ha="center", va="center",
                    color="white" if v > high else "black", fontsize=8)  # fmt: skip
    return _finish(fig, path, show)


def _per_sample_losses(loss_func: Any, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    try:  # torch's losses (and learnloop's, if they take `reduction`) do it in one call
        losses = loss_func(preds, targets, reduction="none")
        if losses.shape == targets.shape[:1]:
            return losses
    except TypeError:
        pass
    return torch.stack([loss_func(preds[i : i + 1], targets[i : i + 1]) for i in range(len(targets))])


@torch.no_grad()
def top_losses(learn: Any, k: int = 9, dl: Iterable | None = None,
               preds: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict]:
    """The `k` samples of `dl` (valid by default) with the highest loss, worst first, as table rows.

    Each row: `index` (position in the loader's order: the dataset index for an unshuffled loader),
    `target`, `predicted`, `loss`, `prob` (the model's probability for its predicted class). `preds`: the
    `(outputs, targets)` of `learn.get_preds(dl)` when you have them already.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    preds, targets = preds if preds is not None else learn.get_preds(dl)
    losses = _per_sample_losses(learn.loss_func, preds, targets).float()
    worst = losses.topk(min(k, len(losses))).indices
    probs = preds.float().softmax(dim=-1)
    return [
        {
            "index": i,
            "target": int(targets[i]),
            "predicted": int(preds[i].argmax()),
            "loss": float(losses[i]),
            "prob": float(probs[i].max()),
        }
        for i in worst.tolist()
    ]


def plot_layer_stats(
    stats: Any, path: PathLike = None, names: Sequence[str] | None = None, every: int = 1, show: bool = True
) -> Figure:
    """Mean, std and near-zero share of each layer's output over batches (a `learnloop.nn.LayerStats`)."""
    fig, axes = _figure(3, panel_size=(4.5, 3.5))
    names = names or [f"layer {i}" for i in range(len(stats.records))]
    panels = [("mean", stats.means), ("std", stats.stds), (f"share |x| < {stats.eps:g}", stats.near_zero)]
    for ax, (title, per_layer) in zip(axes, panels):
        for name, values in zip(names, per_layer):
            ax.plot(values, label=name)
        ax.set(title=title, xlabel="batch" if every == 1 else f"recorded batch (every {every})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _finish(fig, path, show)


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    suggestions: dict[str, float],
    path: PathLike = None,
    show: bool = True,
) -> Figure:
    """An LR finder's loss vs lr on a log x axis, each suggested lr marked on the curve."""
    import numpy as np

    fig, (ax,) = _figure()
    ax.plot(lrs, losses)
    for (rule, lr), marker in zip(suggestions.items(), "o^sDv*"):
        if lr == lr and lrs:  # NaN when there were too few points
            loss = np.interp(np.log(lr), np.log(lrs), losses)  # where the curve is at that lr
            ax.plot(lr, loss, marker, markersize=8, label=f"{rule}: {lr:.2g}")
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="loss (smoothed)")
    if len(losses) > 1:  # frame the descent: the climb past the minimum would squash it flat
        lowest = int(np.argmin(losses))
        low, high = losses[lowest], max(losses[: lowest + 1])
        pad = 0.1 * (high - low) or 0.1 * abs(low) or 0.1
        ax.set_ylim(low - pad, high + 2 * pad)
    if any(lr == lr for lr in suggestions.values()):
        ax.legend()
    return _finish(fig, path, show)


def plot_sched(values: dict[str, Sequence[float]], path: PathLike = None, show: bool = True) -> Figure:
    """Each hyper-parameter's value per training batch, one panel each (e.g. `recorder.hps`)."""
    fig, axes = _figure(max(len(values), 1), panel_size=(4.5, 3.5))
    for ax, (name, per_batch) in zip(axes, values.items()):
        ax.plot(per_batch)
        ax.set(title=name, xlabel="training batch")
        ax.grid(alpha=0.3)
    return _finish(fig, path, show)


def _as_pixels(xb: torch.Tensor) -> torch.Tensor:
    """`(N, C, H, W)` images as floats in [0, 1] for imshow: uint8 scaled; floats clipped."""
    if xb.ndim != 4 or xb.shape[1] not in (1, 3):
        raise ValueError(f"show_batch draws (N, C, H, W) images with 1 or 3 channels, got shape {tuple(xb.shape)}; "
                         "for channels-last images pass xb.permute(0, 3, 1, 2).")
    xb = xb.detach().cpu()
    return xb.float().div(255) if not xb.is_floating_point() else xb.float().clamp(0, 1)


def show_batch(batch: Any, path: PathLike = None, n: int = 16, ncols: int | None = None,
               vocab: Sequence | None = None, show: bool = True, titles: Sequence[str] | None = None) -> Figure:
    """A grid of images with their labels: of a `(xb, yb)` batch, or of a learnloop DataLoader's `one_batch()`.

    From a loader the images are shown as the model sees them (augmented, cropped, resized), undoing the batch
    transforms that have a `decode` (`Normalize`, `ToFloat`), and labels are named by `dl.ds.vocab` when there is one.
    `titles` (one per image) replace the labels.
    """
    if hasattr(batch, "one_batch"):  # a DataLoader: one batch, decoded back to pixels
        dl = batch
        xb, yb = dl.one_batch()[:2]
        xb, vocab = dl.decode(xb), vocab if vocab is not None else getattr(dl.ds, "vocab", None)
    else:
        xb, yb = batch[:2]
    xb, yb = _as_pixels(xb[:n]), [int(y) for y in yb[:n]]
    ncols = ncols or min(len(xb), 8)
    nrows = -(-len(xb) // ncols)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 * ncols, 1.75 * nrows), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, x in zip(axes, xb):
        img = x.permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
    for ax, title in zip(axes, titles or [str(vocab[y]) if vocab is not None else str(y) for y in yb]):
        ax.set_title(title, fontsize=10 if titles is None else 8)
    return _finish(fig, path, show)
