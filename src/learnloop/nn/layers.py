"""Layers from scratch: Linear, ConvLayer, Sequential, AdaptivePool and simple_cnn, the classic small CNN."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .archs import register_arch
from .module import Module, Parameter

__all__ = ["Linear", "ConvLayer", "Sequential", "AdaptivePool", "Flatten", "ReLU", "Lambda",
           "simple_cnn"]


class Linear(Module):
    """`x @ w.t() + b`, xavier-normal weights, zero bias."""

    def __init__(self, ni: int, nf: int, bias: bool = True):
        super().__init__()
        self.ni, self.nf = ni, nf
        self.w = Parameter(torch.zeros(nf, ni))
        nn.init.xavier_normal_(self.w)
        self.b = Parameter(torch.zeros(nf)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.ni:
            raise ValueError(f"{self!r} expects input of shape (..., {self.ni}) "
                             f"(last dim = in features), got {tuple(x.shape)}")
        out = x @ self.w.t()
        return out if self.b is None else out + self.b

    def extra_repr(self) -> str:
        return f"{self.ni}, {self.nf}" + ("" if self.b is not None else ", bias=False")


class ConvLayer(Module):
    """ks x ks conv (padding ks//2), then ReLU if `act`; kaiming init before ReLU, else xavier."""

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 2, act: bool = True):
        super().__init__()
        self.ni, self.nf, self.ks, self.stride, self.act = ni, nf, ks, stride, act
        self.w = Parameter(torch.zeros(nf, ni, ks, ks))
        (nn.init.kaiming_normal_ if act else nn.init.xavier_normal_)(self.w)
        self.b = Parameter(torch.zeros(nf))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.ni:
            raise ValueError(self._bad_input(x))
        x = F.conv2d(x, self.w, self.b, stride=self.stride, padding=self.ks // 2)
        return x.relu() if self.act else x

    def _bad_input(self, x: Tensor) -> str:
        msg = (f"{self!r} expects input of shape (N, {self.ni}, H, W), got {tuple(x.shape)}")
        if x.ndim == 4 and x.shape[-1] == self.ni:
            msg += (": these look like channels-last (NHWC) images; convert them with "
                    "learnloop.data.ToCHW or x.permute(0, 3, 1, 2)")
        return msg

    def extra_repr(self) -> str:
        return (f"{self.ni}, {self.nf}, ks={self.ks}, stride={self.stride}"
                + ("" if self.act else ", act=False"))


class Sequential(Module):
    """Runs its layers in order; indexable, sized and iterable."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} is a {type(layer).__name__}, not a "
                                f"learnloop Module; wrap a function with Lambda(fn)")
            setattr(self, str(i), layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, i: int | slice) -> Module:
        layers = list(self._modules.values())
        return Sequential(*layers[i]) if isinstance(i, slice) else layers[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class AdaptivePool(Module):
    """Mean over height and width: (N, C, H, W) -> (N, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3))


class Flatten(Module):
    """(N, ...) -> (N, -1)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Lambda(Module):
    """Turns a function of one tensor into a layer."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


@register_arch
def simple_cnn(in_channels: int = 3, n_classes: int = 10,
               widths: Sequence[int] = (16, 32, 64, 128)) -> Sequential:
    """The classic small CNN of from-scratch courses: stride-2 ConvLayers, a last one to `n_classes` without ReLU,
    then pooling."""
    sizes = [in_channels, *widths]
    convs = [ConvLayer(ni, nf) for ni, nf in zip(sizes, sizes[1:])]
    return Sequential(*convs, ConvLayer(sizes[-1], n_classes, act=False), AdaptivePool())
