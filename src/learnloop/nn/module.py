"""Parameter and Module, written from scratch on top of torch tensors and autograd."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import torch
from torch._C import _disabled_torch_function_impl

from .torch_view import TorchModule

__all__ = ["Parameter", "Module", "HookHandle", "IncompatibleKeys"]

ForwardHook = Callable[[Any, tuple, Any], Any]
M = TypeVar("M", bound="Module")
_hook_keys = itertools.count()


class Parameter(torch.Tensor):
    """A tensor that a Module registers as trainable (`requires_grad=True`)."""

    # torch's own marker: with it, `isinstance(p, torch.nn.Parameter)` is True, so torch modules,
    # DDP and torch.compile accept these tensors as parameters.
    _is_param = True
    # Results of ops on a Parameter are plain tensors (as with torch.nn.Parameter), so
    # `p.detach()` in a state_dict is a plain tensor that `torch.load(weights_only=True)` reads.
    __torch_function__ = _disabled_torch_function_impl

    def __new__(cls, data: torch.Tensor, requires_grad: bool = True) -> Parameter:
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"Parameter needs a torch.Tensor, got {type(data).__name__}; "
                            f"wrap it first, e.g. Parameter(torch.tensor(...))")
        return torch.Tensor._make_subclass(cls, data.detach(), requires_grad)

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.data.clone(memory_format=torch.preserve_format),
                                        self.requires_grad)
        return memo[id(self)]

    def __reduce_ex__(self, protocol: int) -> tuple:
        return type(self), (self.data, self.requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + repr(self.data)


def _is_parameter(value: object) -> bool:
    return isinstance(value, (Parameter, torch.nn.Parameter))


class HookHandle:
    """Returned by `register_forward_hook`; `.remove()` detaches the hook."""

    def __init__(self, hooks: dict[int, ForwardHook], key: int):
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        """Detach the hook (a second call does nothing)."""
        self.hooks.pop(self.key, None)


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` found missing from, or extra in, a state_dict."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of learnloop layers: registers Parameters and child Modules on assignment."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", {})
        self.training = True

    def __setattr__(self, name: str, value: Any) -> None:
        params: dict[str, torch.Tensor] | None = self.__dict__.get("_params")
        if params is None:
            if _is_parameter(value) or isinstance(value, Module):
                raise AttributeError(f"cannot assign {name!r} before Module.__init__() runs: "
                                     f"call super().__init__() first in "
                                     f"{type(self).__name__}.__init__")
        elif _is_parameter(value):
            self._modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._modules[name] = value
        elif name in params:
            raise TypeError(f"cannot assign {type(value).__name__} to {type(self).__name__}.{name}, "
                            f"which is a Parameter: assign Parameter(tensor), or `del` it first")
        elif isinstance(value, torch.nn.Module):
            raise TypeError(f"{type(self).__name__}.{name}: a torch.nn.Module inside a learnloop "
                            f"Module would not be trained; use learnloop layers here, or build "
                            f"the whole model with torch.nn")
        else:
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._params.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define one")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, fn: ForwardHook) -> HookHandle:
        """Call `fn(module, inputs, output)` after each forward; a non-None result replaces output."""
        key = next(_hook_keys)
        self._forward_hooks[key] = fn
        return HookHandle(self._forward_hooks, key)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct child modules with their attribute names."""
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        """The direct child modules."""
        yield from self._modules.values()

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, Module]]:
        """This module and all below it with dotted names ('' for this one), each once by default."""
        seen: set[int] = set()
        todo = [(prefix, self)]
        while todo:
            name, module = todo.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            todo.extend(reversed([(f"{name}.{n}" if name else n, m)
                                  for n, m in module._modules.items()]))

    def modules(self) -> Iterator[Module]:
        """This module and all below it, each once."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Own parameters then the children's, with dotted names; each tensor once by default."""
        seen: set[int] = set()
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._params.items():
                if remove_duplicate and id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Own parameters then the children's, each tensor once."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def train(self: M, mode: bool = True) -> M:
        """Set `.training` on this module and all below it."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self: M) -> M:
        """Same as `train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain (detached) tensors by dotted name, sharing memory with the parameters."""
        # As in torch, a shared parameter appears under each of its names.
        return {name: p.detach() for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True
                        ) -> IncompatibleKeys:
        """Copy values into the parameters; with `strict`, any missing or extra key is an error."""
        own = dict(self.named_parameters(remove_duplicate=False))
        keys = IncompatibleKeys(missing_keys=[k for k in own if k not in state_dict],
                                unexpected_keys=[k for k in state_dict if k not in own])
        problems = [f"size mismatch for {k!r}: state_dict has {tuple(v.shape)}, "
                    f"the model has {tuple(own[k].shape)}"
                    for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
        if strict and keys.missing_keys:
            problems.append(f"missing keys: {keys.missing_keys}")
        if strict and keys.unexpected_keys:
            problems.append(f"unexpected keys: {keys.unexpected_keys}")
        if problems:
            raise RuntimeError(f"cannot load state_dict into {type(self).__name__}: "
                               + "; ".join(problems) + f" (the model's keys are {list(own)})")
        with torch.no_grad():
            for name, p in own.items():
                if name in state_dict:
                    p.copy_(state_dict[name])
        return keys

    def to(self: M, device: torch.device | str | torch.dtype | None = None,
           dtype: torch.dtype | None = None) -> M:
        """Move/cast parameters in place (same Parameter objects), so optimizers stay valid."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        for p in self.parameters():
            # Only floating parameters change dtype, as in torch.
            p_dtype = dtype if dtype is not None and p.is_floating_point() else None
            grad, p.grad = p.grad, None
            p.data = p.data.to(device=device, dtype=p_dtype)
            if grad is not None:
                p.grad = grad.to(device=device, dtype=p_dtype)
        return self

    def as_torch(self) -> torch.nn.Module:
        """A `torch.nn.Module` view sharing these very Parameter tensors (for DDP, torch.compile)."""
        return TorchModule(self)

    def extra_repr(self) -> str:
        """Settings shown inside this module's repr."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}({self.extra_repr()}\n" + "\n".join(lines) + "\n)"
