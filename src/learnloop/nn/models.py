"""Ready-made models built from torch.nn layers, for what learnloop's from-scratch Module lacks (buffers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def bn_cnn(in_channels: int = 1, n_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128),
           strides: Sequence[int] = (2, 2, 2, 2)) -> torch.nn.Sequential:
    """A small fast CNN: one 3x3 conv-BatchNorm-ReLU per width (with its stride), average pooling, a linear head."""
    # torch.nn, not learnloop.nn: BatchNorm keeps running statistics in buffers, which learnloop's Module lacks.
    # No conv bias: the BatchNorm right after it has one.
    sizes = [in_channels, *widths]
    layers: list[torch.nn.Module] = []
    if len(strides) != len(widths):
        raise ValueError(f"bn_cnn needs one stride per width, got widths={tuple(widths)}, strides={tuple(strides)}.")
    for ni, nf, stride in zip(sizes, sizes[1:], strides):
        layers += [torch.nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False), torch.nn.BatchNorm2d(nf),
                   torch.nn.ReLU(inplace=True)]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(sizes[-1], n_classes))
