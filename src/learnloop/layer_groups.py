"""Layer groups: a model's parameters split into groups from body to head, one optimizer param group each, and
which of them are frozen (`freeze_to`), with BatchNorm layers in frozen groups still training by default.

A splitter is a function of the model returning lists of parameters, first group first (fastai's convention).
`default_splitter` makes two groups, body and head: the head is a torchvision/timm classifier (`get_classifier()`,
`fc`, `classifier`, `heads`, `head`) when the model has one, else its last child that holds parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .errors import CheckpointError
from .nn.torch_view import TorchModule

__all__ = ["default_splitter", "head_module", "split_params", "load_body", "LayerGroups", "BN_TYPES"]

Splitter = Callable[[Any], Sequence[Iterable[torch.Tensor]]]
# Every BatchNorm keeps running statistics; SyncBatchNorm is what DDP users convert to, timm's subclass these.
BN_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
HEAD_NAMES = ("fc", "classifier", "heads", "head")  # torchvision: resnets, vgg/densenet/efficientnet, vit; timm


def _has_params(module: Any) -> bool:
    return next(iter(module.parameters()), None) is not None


def _inner(model: Any) -> Any:
    """The model inside wrappers (DDP's `module`, torch.compile's `_orig_mod`, learnloop's torch view) and inside
    a container holding the whole network (a Sequential around a Sequential)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(model, TorchModule):
            model = model.source
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            holders = [c for c in model.children() if _has_params(c)]
            own = next(iter(model.parameters(recurse=False)), None)
            if own is not None or len(holders) != 1 or not list(holders[0].children()):
                return model
            model = holders[0]


def head_module(model: Any) -> Any | None:
    """The module `default_splitter` takes as the head: a torchvision/timm classifier, else the last child
    holding parameters; None when the model has no such child (then it is one group)."""
    model = _inner(model)
    get_classifier = getattr(model, "get_classifier", None)  # timm
    if callable(get_classifier):
        head = get_classifier()
        if hasattr(head, "parameters") and _has_params(head):
            return head
    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if hasattr(head, "parameters") and callable(head.parameters) and _has_params(head):
            return head
    holders = [c for c in model.children() if _has_params(c)]
    return holders[-1] if holders else None


def default_splitter(model: Any) -> list[list[torch.Tensor]]:
    """Two groups, body then head (`head_module`); one group when the model has no separate head."""
    params = list(model.parameters())
    head = head_module(model)
    if head is None:
        return [params]
    in_head = {id(p) for p in head.parameters()}
    body = [p for p in params if id(p) not in in_head]
    return [body, [p for p in params if id(p) in in_head]] if body else [params]


def split_params(model: Any, splitter: Splitter | None = None) -> list[list[torch.Tensor]]:
    """The model's layer groups from `splitter` (default: `default_splitter`), checked: no group empty, no
    parameter in two groups."""
    groups = [list(g) for g in (splitter or default_splitter)(model)]
    name = getattr(splitter, "__name__", repr(splitter))
    if not groups or not all(groups):
        raise ValueError(f"The splitter {name} returned an empty layer group (sizes {[len(g) for g in groups]}): "
                         f"each group needs at least one parameter, e.g. lambda m: [params(m.body), params(m.head)].")
    seen: set[int] = set()
    for i, group in enumerate(groups):
        for p in group:
            if id(p) in seen:
                raise ValueError(f"The splitter {name} put a parameter of shape {tuple(p.shape)} in more than one "
                                 f"layer group (again in group {i}): each parameter belongs to one group.")
            seen.add(id(p))
    return groups


def load_body(model: Any, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a trained model's `state` (a state_dict) into `model`, all but its head (`head_module`), which keeps
    its fresh weights (a head for other classes); returns the names copied. A CheckpointError (a ValueError) names
    a tensor of the body that `state` lacks or holds in another shape: a model of another architecture."""
    inner, head = _inner(model), head_module(model)
    prefix = next((name for name, m in inner.named_modules() if m is head), None)
    body = {k: v for k, v in inner.state_dict().items() if prefix is None or not k.startswith(f"{prefix}.")}
    missing = [k for k in body if k not in state]
    wrong = [k for k in body if k in state and state[k].shape != body[k].shape]
    if missing or wrong:
        what = (f"{len(missing)} of the body's tensors are missing from it (e.g. {missing[:3]})" if missing else
                f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)} there and {tuple(body[wrong[0]].shape)} here")
        raise CheckpointError(f"The trained weights don't fit this model's body: {what}. Start from a model of the same "
                         f"architecture.")
    with torch.no_grad():
        for key, tensor in body.items():
            tensor.copy_(state[key])  # state_dict tensors share memory with the model's
    return list(body)


class LayerGroups:
    """A model's layer groups and how many are frozen; frozen parameters get no gradient (`requires_grad`
    False), except BatchNorm's when `train_bn`, whose layers then keep training weights and running statistics."""

    def __init__(self, model: Any, splitter: Splitter | None = None):
        self.model, self.groups = model, split_params(model, splitter)
        self.n_frozen, self.train_bn = 0, True
        self._bn_hooks: list[Any] = []  # forward pre-hooks holding frozen BatchNorms in eval mode (train_bn=False)

    def __len__(self) -> int:
        return len(self.groups)

    def param_groups(self) -> list[dict[str, list[torch.Tensor]]]:
        """One optimizer param group per layer group."""
        return [{"params": list(g)} for g in self.groups]

    def freeze_to(self, n: int, train_bn: bool = True) -> None:
        """Freeze the first `n` groups (`n < 0`: all but the last `-n`), unfreeze the rest."""
        if not isinstance(n, int) or not -len(self) <= n <= len(self):
            raise ValueError(f"freeze_to needs an int in [-{len(self)}, {len(self)}] (the model has {len(self)} "
                             f"layer groups), got {n!r}: e.g. freeze_to(-1) trains the last group alone.")
        n_frozen = n if n >= 0 else len(self) + n
        if n_frozen == 0 and n != 0:
            warnings.warn(f"The model has {len(self)} layer group(s): freeze_to({n}) freezes none. Give the Learner a "
                          f"splitter returning body and head groups.", stacklevel=3)
        self.n_frozen, self.train_bn = n_frozen, bool(train_bn)
        bns = self._frozen_bns()
        kept = {id(p) for m in bns for p in m.parameters(recurse=False)} if train_bn else set()
        for i, group in enumerate(self.groups):
            for p in group:
                p.requires_grad_(i >= n_frozen or id(p) in kept)
                if not p.requires_grad:
                    p.grad = None  # else an optimizer with weight decay would still move it
        self._hold_bn_eval([] if train_bn else bns)

    def _frozen_bns(self) -> list[torch.nn.Module]:
        """BatchNorm layers all of whose parameters are in frozen groups."""
        frozen = {id(p) for group in self.groups[: self.n_frozen] for p in group}
        modules = self.model.modules() if hasattr(self.model, "modules") else []
        return [m for m in modules if isinstance(m, BN_TYPES) and _has_params(m)
                and all(id(p) in frozen for p in m.parameters(recurse=False))]

    def _hold_bn_eval(self, bns: list[torch.nn.Module]) -> None:
        for handle, bn in self._bn_hooks:
            handle.remove()
            bn.train(self.model.training)
        # A hook, not a callback: the model stays in eval for them whoever calls model.train() (the loop, the user).
        self._bn_hooks = [(bn.register_forward_pre_hook(_bn_eval), bn) for bn in bns]

    def state_dict(self) -> dict[str, Any]:
        """What is frozen: `n_frozen` groups, and `train_bn`; for checkpoints."""
        return {"n_frozen": self.n_frozen, "train_bn": self.train_bn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Freeze as `state_dict` recorded."""
        self.freeze_to(state["n_frozen"], state["train_bn"])


def _bn_eval(module: torch.nn.Module, args: tuple) -> None:
    module.training = False  # normalise with the running statistics, and leave them as they are
