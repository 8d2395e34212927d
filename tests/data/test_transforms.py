import pytest
import torch

from learnloop.data import Normalize, ToCHW


def test_normalize_per_channel_stats_and_round_trip():
    g = torch.Generator().manual_seed(0)
    xb = torch.randn(64, 3, 5, 5, generator=g) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) \
        + torch.tensor([10.0, -5.0, 0.5]).view(1, 3, 1, 1)
    norm = Normalize.from_batch(xb)
    expected = xb.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(norm.mean, expected.mean(1)) and torch.allclose(norm.std, expected.std(1))
    assert torch.allclose(norm.mean, torch.tensor([10.0, -5.0, 0.5]), atol=0.3)
    out = norm(xb)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3)), torch.ones(3), atol=1e-5)
    assert torch.allclose(norm.decode(out), xb, atol=1e-5)


def test_normalize_uint8_and_explicit_stats():
    norm = Normalize([0.5], [0.25])
    out = norm(torch.tensor([[[0, 255]]], dtype=torch.uint8))  # (N=1, C=1, 2)
    assert out.dtype == torch.float32 and out.tolist() == [[[-2.0, 1018.0]]]


def test_normalize_errors_name_the_fix():
    norm = Normalize([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="ToCHW"):
        norm(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="std > 0"):
        Normalize.from_batch(torch.ones(4, 2, 3))
    with pytest.raises(ValueError, match="one of each per channel"):
        Normalize([0.0, 0.0], [1.0])


def test_to_chw():
    x = torch.arange(2 * 4 * 5 * 3).view(2, 4, 5, 3)
    out = ToCHW()(x)
    assert out.shape == (2, 3, 4, 5) and out.is_contiguous()
    assert out[1, 2, 3, 4] == x[1, 3, 4, 2]
    assert torch.equal(ToCHW().decode(out), x)
    assert ToCHW()(x[0]).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        ToCHW()(torch.zeros(4, 5))
