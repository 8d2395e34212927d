"""Plots are real PNGs of sensible size; the numbers behind them (activation stats, confusion, top losses) are right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch.utils.data import DataLoader, TensorDataset

from learnloop import Learner
from learnloop.callbacks import ActivationStats
from learnloop.metrics import accuracy
from learnloop.plots import (
    confusion_matrix,
    plot_activation_stats,
    plot_confusion,
    plot_loss,
    plot_metrics,
    show_batch,
    smooth,
    top_losses,
)


class DLs:
    def __init__(self, train, valid):
        self.train, self.valid = train, valid


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )


@pytest.fixture(scope="module")
def ordered_dls(digits_tensors):
    """Unshuffled loaders, so a test can replay the exact batches the fit saw."""
    xt, yt, xv, yv = digits_tensors
    return DLs(DataLoader(TensorDataset(xt, yt), batch_size=64), DataLoader(TensorDataset(xv, yv), batch_size=128))


@pytest.fixture(scope="module")
def fitted(ordered_dls):
    """A learner fitted for 3 epochs with accuracy and ActivationStats."""
    learn = Learner(mlp(), ordered_dls, lr=0.3, metrics=[accuracy], cbs=[ActivationStats()], progress=False)
    learn.fit(3)
    return learn


def assert_png(path, width: int, height: int) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (width, height)
        assert sum(n > 0 for n in image.convert("L").histogram()) > 10  # something drawn, not a blank canvas


def test_recorder_plot_loss(fitted, tmp_path):
    fig = fitted.recorder.plot_loss(tmp_path / "loss.png")
    assert_png(tmp_path / "loss.png", 600, 400)
    train_raw, train_smooth, valid = fig.axes[0].lines
    assert list(train_raw.get_ydata()) == fitted.recorder.losses
    n_iter = len(fitted.dls.train)
    assert list(valid.get_xdata()) == [n_iter, 2 * n_iter, 3 * n_iter]  # at each epoch's end
    assert list(valid.get_ydata()) == [row["valid_loss"] for row in fitted.history]


def test_smooth_is_debiased():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth([0.0, 1.0], beta=0.5) == pytest.approx([0.0, 0.5 / 0.75])


def test_recorder_plot_metrics(fitted, tmp_path):
    fig = fitted.recorder.plot_metrics(tmp_path / "metrics.png")
    assert_png(tmp_path / "metrics.png", 1000, 400)  # loss panel + accuracy panel
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert list(fig.axes[1].lines[0].get_ydata()) == [row["valid_accuracy"] for row in fitted.history]


def test_plot_loss_before_fit_says_train_first(ordered_dls):
    learn = Learner(mlp(), ordered_dls, progress=False)
    with pytest.raises(ValueError, match="Train first"):
        plot_loss(learn)
    with pytest.raises(ValueError, match="Train first"):
        plot_metrics(learn)


def test_activation_stats_match_a_replayed_forward(ordered_dls):
    model = mlp()
    stats = ActivationStats(every=2)
    learn = Learner(model, ordered_dls, lr=0.0, cbs=[stats], progress=False)  # lr 0: weights stay put
    learn.fit(2)
    n_iter = len(ordered_dls.train)
    assert list(stats.stats) == ["1", "3"]  # leaf layers with parameters
    assert all(s.shape == (2 * len(range(0, n_iter, 2)), 3) for s in stats.stats.values())
    xb, _ = next(iter(ordered_dls.train))
    with torch.no_grad():
        out = model[1](model[0](xb))
    expected = [out.mean().item(), out.std().item(), (out.abs() < 0.05).float().mean().item()]
    assert stats.stats["1"][0].tolist() == pytest.approx(expected, rel=1e-5)
    assert not model[1]._forward_hooks  # removed after the fit


def test_activation_stats_on_given_modules_and_plot(tmp_path, ordered_dls):
    model = mlp()
    stats = ActivationStats(modules=[model[2]])  # the ReLU: its near-zero share counts the dead units
    Learner(model, ordered_dls, lr=0.3, cbs=[stats], progress=False).fit(1)
    relu = stats.stats["2"]
    assert relu.shape == (len(ordered_dls.train), 3)
    assert (relu[:, 0] >= 0).all() and (relu[:, 2] > 0.2).all()
    fig = plot_activation_stats(stats, tmp_path / "act.png")
    assert_png(tmp_path / "act.png", 1350, 350)
    assert [ax.get_title() for ax in fig.axes] == ["mean", "std", "share |x| < 0.05"]


def test_activation_stats_bad_input():
    with pytest.raises(ValueError, match="every must be a positive int"):
        ActivationStats(every=0)
    learn = Learner(mlp(), DLs([], None), progress=False, cbs=[ActivationStats(modules=[])])
    with pytest.raises(ValueError, match="found no layers to hook"):
        learn.fit(1)


def test_confusion_matrix_equals_sklearn(fitted, tmp_path):
    preds, targets = fitted.get_preds()
    cm = confusion_matrix(preds, targets)
    assert cm.tolist() == sk_confusion_matrix(targets.numpy(), preds.argmax(-1).numpy()).tolist()
    assert cm.sum() == len(targets)
    plot_confusion(fitted, tmp_path / "cm.png", labels=[f"d{i}" for i in range(10)])
    assert_png(tmp_path / "cm.png", 700, 700)
    with pytest.raises(ValueError, match="Got 3 labels for 10 classes"):
        plot_confusion(fitted, labels=["a", "b", "c"])


def test_top_losses(fitted):
    preds, targets = fitted.get_preds()
    per_sample = F.cross_entropy(preds, targets, reduction="none")
    rows = top_losses(fitted, k=5)
    assert [r["loss"] for r in rows] == pytest.approx(per_sample.topk(5).values.tolist(), rel=1e-6)
    assert [r["index"] for r in rows] == per_sample.topk(5).indices.tolist()
    for r in rows:
        assert r["target"] == targets[r["index"]] and r["predicted"] == preds[r["index"]].argmax()
        assert 0 < r["prob"] <= 1
    loss_func = fitted.loss_func
    fitted.loss_func = lambda p, t: F.cross_entropy(p, t)  # no `reduction` argument: per-sample fallback
    try:
        fallback = top_losses(fitted, k=5)
    finally:
        fitted.loss_func = loss_func
    assert [r["index"] for r in fallback] == [r["index"] for r in rows]
    assert [r["loss"] for r in fallback] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    with pytest.raises(ValueError, match="k must be a positive int"):
        top_losses(fitted, k=0)


def test_show_batch_of_a_batch_draws_its_pixels_and_labels(tmp_path):
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])
    xb = colours.view(4, 3, 1, 1).expand(4, 3, 20, 20)
    fig = show_batch((xb, torch.tensor([3, 1, 0, 2])), tmp_path / "b.png", vocab=["cat", "dog", "emu", "fox"])
    assert [ax.get_title() for ax in fig.axes[:4]] == ["fox", "dog", "cat", "emu"]
    with Image.open(tmp_path / "b.png") as img:
        assert img.format == "PNG"
        px = torch.from_numpy(np.array(img.convert("RGB")))
    for rgb in (colours[:3] * 255).long():  # each image is drawn: a block of its pure colour
        assert (px == rgb).all(-1).sum() > 100
    grey = show_batch((torch.zeros(2, 1, 5, 5, dtype=torch.uint8), torch.tensor([0, 1])), n=1)
    assert len(grey.axes[0].images) == 1 and grey.axes[0].get_title() == "0"
    with pytest.raises(ValueError, match="channels-last"):
        show_batch((torch.zeros(2, 5, 5, 3), torch.tensor([0, 1])))


def test_show_batch_of_a_loader_shows_what_the_model_sees(photo_folder, tmp_path):
    from learnloop.data.datasets import image_folder_dls

    dls = image_folder_dls(photo_folder, size=24, bs=6, seed=0)
    epoch_before = dls.train.epoch
    fig = dls.show_batch(tmp_path / "train.png", n=6)
    assert dls.train.epoch == epoch_before  # the loader's progress is untouched
    xb, yb = next(iter(dls.train))  # the first batch of the coming epoch: the one shown
    pixels = dls.train.decode(xb)
    for ax, x, y in zip(fig.axes, pixels, yb):
        assert ax.get_title() == dls.train.ds.vocab[int(y)]
        assert torch.allclose(torch.as_tensor(ax.images[0].get_array()), x.permute(1, 2, 0).float() / 255)
    with Image.open(tmp_path / "train.png") as img:
        assert img.format == "PNG" and img.width >= 400
    assert dls.show_batch(tmp_path / "valid.png", valid=True).axes[0].get_title() == "a"
