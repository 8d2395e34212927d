import pytest
import torch
import torch.nn.functional as F

from learnloop.nn import cross_entropy, log_softmax, logsumexp, nll_loss


def logits_and_targets(n: int = 16, c: int = 7, scale: float = 3.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=gen) * scale).requires_grad_()
    targets = torch.randint(0, c, (n,), generator=gen)
    return logits, targets


def value_and_grad(fn, logits, targets, **kwargs):
    loss = fn(logits, targets, **kwargs)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss, grad


@pytest.mark.parametrize("n,c,scale", [(16, 7, 3.0), (1, 2, 1.0), (64, 100, 10.0)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_value_and_grad_equal_torch(n, c, scale, label_smoothing):
    logits, targets = logits_and_targets(n, c, scale)
    ours = value_and_grad(cross_entropy, logits, targets, label_smoothing=label_smoothing)
    theirs = value_and_grad(F.cross_entropy, logits, targets, label_smoothing=label_smoothing)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_cross_entropy_is_finite_for_huge_logits(scale):
    logits, targets = logits_and_targets(scale=scale)
    loss, grad = value_and_grad(cross_entropy, logits, targets)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    ref_loss, ref_grad = value_and_grad(F.cross_entropy, logits, targets)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=0)


def test_helpers_equal_torch():
    logits, targets = logits_and_targets()
    torch.testing.assert_close(logsumexp(logits), logits.logsumexp(-1, keepdim=True),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(log_softmax(logits, dim=0), F.log_softmax(logits, dim=0),
                               atol=1e-5, rtol=0)
    logp = F.log_softmax(logits, -1)
    torch.testing.assert_close(nll_loss(logp, targets), F.nll_loss(logp, targets), atol=1e-6, rtol=0)


def test_cross_entropy_bad_input():
    logits, targets = logits_and_targets()
    with pytest.raises(TypeError, match=r"int64 class indices.*float32.*targets.long\(\)"):
        cross_entropy(logits, targets.float())
    with pytest.raises(ValueError, match=r"logits \(N, C\) and targets \(N,\), got \(16, 7\) "
                                         r"and \(16, 1\)"):
        cross_entropy(logits, targets[:, None])
