"""The torch view of a learnloop Module: a `torch.nn.Module` holding the very same Parameters.

It lets a from-scratch model go wherever torch wants its own class (DDP, `torch.compile`, TensorBoard graphs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .module import Module


class TorchModule(torch.nn.Module):
    """A torch.nn.Module mirroring a learnloop Module: same Parameter objects, same forward."""

    def __init__(self, source: Module, views: dict[int, TorchModule] | None = None):
        super().__init__()
        self.source = source
        self.training = source.training
        views = {} if views is None else views
        views[id(source)] = self  # a child shared by two parents gets one view, as in the source
        for name, p in source._params.items():
            self.register_parameter(name, p)
        for name, child in source._modules.items():
            self.add_module(name, views.get(id(child)) or TorchModule(child, views))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.source(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{type(self.source).__name__}: {self.source.extra_repr()}".rstrip(": ")

    def train(self, mode: bool = True) -> TorchModule:
        """Set `.training` here and on the learnloop module (torch recurses into the children)."""
        super().train(mode)
        self.source.training = mode
        return self


def to_torch(model: Module | torch.nn.Module) -> torch.nn.Module:
    """`model` itself if it is a torch.nn.Module, else its `as_torch()` view."""
    if isinstance(model, torch.nn.Module):
        return model
    if callable(getattr(model, "as_torch", None)):  # a learnloop Module
        return model.as_torch()
    raise TypeError(f"to_torch needs a learnloop Module or a torch.nn.Module, "
                    f"got {type(model).__name__}")
