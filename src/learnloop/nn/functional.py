"""Loss functions from scratch: log-softmax via log-sum-exp, negative log-likelihood, cross-entropy."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["logsumexp", "log_softmax", "nll_loss", "cross_entropy"]


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """log(sum(exp(x))) along `dim`, kept finite for huge x by shifting by the max."""
    # The shift cancels out mathematically, so no gradient needs to flow through it.
    m = x.detach().amax(dim, keepdim=True)
    return m + (x - m).exp().sum(dim, keepdim=True).log()


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along `dim`, computed as x - logsumexp(x)."""
    return x - logsumexp(x, dim)


def nll_loss(log_probs: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -log_probs[i, targets[i]]."""
    return -log_probs.gather(1, targets[:, None]).mean()


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of (N, C) logits against (N,) int64 class indices."""
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy wants logits (N, C) and targets (N,), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if targets.dtype != torch.int64:
        raise TypeError(f"cross_entropy wants int64 class indices as targets, got {targets.dtype}; "
                        f"convert them with targets.long()")
    log_probs = log_softmax(logits)
    loss = nll_loss(log_probs, targets)
    if label_smoothing == 0.0:
        return loss
    # Smoothing mixes the one-hot target with a uniform one, as F.cross_entropy does.
    return (1 - label_smoothing) * loss - label_smoothing * log_probs.mean()
