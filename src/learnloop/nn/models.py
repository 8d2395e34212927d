"""Ready-made models built from torch.nn layers, for what learnloop's from-scratch Module lacks (buffers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .archs import register_arch


def _conv_bn_relu(ni: int, nf: int, stride: int) -> list[torch.nn.Module]:
    # No conv bias: the BatchNorm right after it has one.
    return [torch.nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False), torch.nn.BatchNorm2d(nf),
            torch.nn.ReLU(inplace=True)]


@register_arch
def bn_cnn(in_channels: int = 1, n_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128),
           strides: Sequence[int] = (2, 2, 2, 2), depth: int = 1) -> torch.nn.Sequential:
    """A small fast CNN: per width, `depth` 3x3 conv-BatchNorm-ReLUs (the first with the width's stride), then
    average pooling and a linear head."""
    # torch.nn, not learnloop.nn: BatchNorm keeps running statistics in buffers, which learnloop's Module lacks.
    sizes = [in_channels, *widths]
    layers: list[torch.nn.Module] = []
    if len(strides) != len(widths):
        raise ValueError(f"bn_cnn needs one stride per width, got widths={tuple(widths)}, strides={tuple(strides)}.")
    if depth < 1:
        raise ValueError(f"bn_cnn's depth is the number of convs per width, at least 1; got {depth}.")
    for ni, nf, stride in zip(sizes, sizes[1:], strides):
        layers += _conv_bn_relu(ni, nf, stride)
        for _ in range(depth - 1):
            layers += _conv_bn_relu(nf, nf, 1)
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(sizes[-1], n_classes))


@register_arch
def image_cnn(in_channels: int = 3, n_classes: int = 10,
              widths: Sequence[int] = (32, 64, 128, 256)) -> torch.nn.Sequential:
    """A CNN for 64-128 px colour photos: per width two 3x3 conv-BatchNorm-ReLUs (the very first of stride 2), a 2x2
    max pool between widths, then average pooling and a linear head; 1.2M parameters."""
    # Max pools, not bn_cnn's strided convs: a max keeps a small object's strongest response wherever it sits, and on
    # cluttered photos the strided version sat at chance for epochs (README "Image folders" has the figures).
    sizes = [in_channels, *widths]
    layers: list[torch.nn.Module] = []
    for i, (ni, nf) in enumerate(zip(sizes, sizes[1:])):
        pool = [torch.nn.MaxPool2d(2)] if i else []
        layers += pool + _conv_bn_relu(ni, nf, 1 if i else 2) + _conv_bn_relu(nf, nf, 1)
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(sizes[-1], n_classes))
