"""Batch transforms: integer pixels to floats, per-channel normalisation and channels-last to channels-first."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class Normalize:
    """`x -> (x - mean) / std` per channel (dim 1) of an `(N, C, ...)` batch; `.decode` is the inverse."""

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize got {len(self.mean)} means but {len(self.std)} stds; "
                             "give one of each per channel.")
        if not (self.std > 0).all():
            raise ValueError(f"Normalize needs every std > 0, got {self.std.tolist()}; a constant channel has std 0, "
                             "drop it or pass std=1 for it.")

    @classmethod
    def from_batch(cls, xb: Tensor) -> Normalize:
        """Per-channel mean and std of an `(N, C, ...)` batch, taken over every dim but 1."""
        if xb.ndim < 2:
            raise ValueError(f"from_batch needs an (N, C, ...) batch, got shape {tuple(xb.shape)}.")
        dims = [d for d in range(xb.ndim) if d != 1]
        xb = xb.float()
        return cls(xb.mean(dims), xb.std(dims))

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim < 2 or len(self.mean) not in (1, x.shape[1]):
            raise ValueError(f"Normalize has stats for {len(self.mean)} channels but got a batch of shape "
                             f"{tuple(x.shape)} (channels on dim 1 expected); for channels-last (N, H, W, C) "
                             "images put ToCHW() before Normalize.")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.mean.to(x.device).view(shape), self.std.to(x.device).view(shape)

    def __call__(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return (x - mean).div_(std)  # one new tensor, not two

    def decode(self, x: Tensor) -> Tensor:
        """Undo the normalisation: `x * std + mean`."""
        mean, std = self._stats(x)
        return x * std + mean

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class ToCHW:
    """Channels-last `(N, H, W, C)` -> `(N, C, H, W)`; a single `(H, W, C)` image -> `(C, H, W)`."""

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4):
            raise ValueError(f"ToCHW expects (N, H, W, C) or (H, W, C), got shape {tuple(x.shape)}.")
        return x.permute(0, 3, 1, 2).contiguous() if x.ndim == 4 else x.permute(2, 0, 1).contiguous()

    def decode(self, x: Tensor) -> Tensor:
        """Back to channels-last."""
        return x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(1, 2, 0)

    def __repr__(self) -> str:
        return "ToCHW()"


class ToFloat:
    """Integer pixels (uint8, 0..255) -> float32 in [0, 1], once per batch; a float batch passes unchanged.

    Workers send uint8 batches (a quarter of float32's bytes) and this runs in the main process, before `Normalize`.
    """

    def __init__(self, div: float = 255.0) -> None:
        self.div = div

    def __call__(self, x: Tensor) -> Tensor:
        return x if x.is_floating_point() else x.float().div_(self.div)

    def decode(self, x: Tensor) -> Tensor:
        """Back to uint8 pixels, rounded and clamped to 0..255."""
        return (x * self.div).round_().clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        return f"ToFloat(div={self.div:g})"
