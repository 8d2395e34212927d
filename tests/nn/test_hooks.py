import pytest
import torch
from matplotlib.figure import Figure

from learnloop.nn import Hook, Hooks, LayerStats, Linear, simple_cnn
from learnloop.plots import plot_layer_stats


@pytest.mark.parametrize("make", [lambda: Linear(3, 2), lambda: torch.nn.Linear(3, 2)],
                         ids=["learnloop", "torch"])
def test_hook_fires_once_per_forward_and_never_after_remove(make):
    layer = make()
    calls = []
    x = torch.randn(4, 3)
    hook = Hook(layer, lambda m, inp, out: calls.append((m, inp, out)))
    out = layer(x)
    assert len(calls) == 1
    m, inp, seen = calls[0]
    assert m is layer and inp[0] is x and seen is out
    layer(x)
    assert len(calls) == 2
    hook.remove()
    hook.remove()  # removing twice is harmless
    layer(x)
    assert len(calls) == 2


def test_hook_as_context_manager_and_hooks_for_many():
    model = simple_cnn(in_channels=1, widths=(4, 8))
    shapes = []
    with Hooks(list(model)[:3], lambda m, inp, out: shapes.append(tuple(out.shape))) as hooks:
        assert len(hooks) == 3
        model(torch.randn(2, 1, 8, 8))
    model(torch.randn(2, 1, 8, 8))
    assert shapes == [(2, 4, 4, 4), (2, 8, 2, 2), (2, 10, 1, 1)]
    calls = []
    with Hook(model[0], lambda *a: calls.append(1)):
        model(torch.randn(2, 1, 8, 8))
    model(torch.randn(2, 1, 8, 8))
    assert calls == [1]


def test_hook_return_value_replaces_output_as_in_torch():
    layer = Linear(3, 2)
    with Hook(layer, lambda m, inp, out: out * 0):
        assert torch.equal(layer(torch.randn(1, 3)), torch.zeros(1, 2))


def test_layer_stats_records_mean_std_and_near_zero_per_batch():
    model = simple_cnn(in_channels=1, widths=(4, 8))
    layers = list(model)[:3]
    outputs = []
    with Hooks(layers, lambda m, inp, out: outputs.append(out.detach())), \
            LayerStats(layers, eps=0.05) as stats:
        for _ in range(2):
            model(torch.randn(16, 1, 8, 8))
    model(torch.randn(16, 1, 8, 8))  # removed: not recorded
    assert [len(m) for m in stats.means] == [2, 2, 2]
    for batch in range(2):
        for i in range(3):
            out = outputs[batch * 3 + i]
            assert stats.means[i][batch] == pytest.approx(out.mean().item(), abs=1e-6)
            assert stats.stds[i][batch] == pytest.approx(out.std().item(), abs=1e-6)
            share = (out.abs() < 0.05).float().mean().item()
            assert stats.near_zero[i][batch] == pytest.approx(share, abs=1e-6)
    # the first two layers end in ReLU: at least their negative half is exactly zero
    assert all(z > 0.3 for z in stats.near_zero[0])


def test_layer_stats_on_torch_modules():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    with LayerStats(model) as stats:
        model(torch.randn(5, 3))
    assert len(stats.means) == 2 and len(stats.stds[1]) == 1


def test_plot_layer_stats_returns_a_figure_and_writes_a_png(tmp_path):
    model = simple_cnn(in_channels=1, widths=(4,))
    with LayerStats(model) as stats:
        for _ in range(3):
            model(torch.randn(8, 1, 8, 8))
    fig = plot_layer_stats(stats, tmp_path / "stats.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [len(ax.lines) for ax in fig.axes] == [3, 3, 3]
    assert (tmp_path / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(plot_layer_stats(stats), Figure)
