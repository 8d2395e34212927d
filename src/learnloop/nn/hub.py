"""torchvision and timm models by name (`learnloop fit --arch resnet18`), with a head for the data's classes and,
with `pretrained`, their published weights. Both packages cache what they download: torchvision under
`$TORCH_HOME/hub/checkpoints` (default `~/.cache/torch`), timm in the Hugging Face cache (`$HF_HOME`, default
`~/.cache/huggingface`), so only the first run needs the network."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from ..errors import MissingPackageError, SettingError
from .archs import register_arch

__all__ = ["hub_model", "hub_arch", "hub_source", "replace_head", "INSTALL_HINT"]

INSTALL_HINT = ("pip install torchvision --index-url https://download.pytorch.org/whl/cpu (the build that matches "
                "your torch; use the cu index for a GPU torch), or pip install timm")


def _import(package: str) -> tuple[Any | None, str | None]:
    """The package, or None and why it could not be imported (absent, or built for another torch)."""
    try:
        return importlib.import_module(package), None
    except Exception as e:  # torchvision built for another torch fails with a RuntimeError (torchvision::nms)
        return None, f"{package}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def hub_source(name: str) -> str:
    """'torchvision' or 'timm': the installed package that has a model called `name` (torchvision first); a
    SettingError naming what is installed, or a MissingPackageError saying how to install them when neither imports."""
    problems = []
    tv, why = _import("torchvision")
    if tv is not None and name in tv.models.list_models():
        return "torchvision"
    problems += [why] if why else []
    timm, why = _import("timm")
    if timm is not None and timm.is_model(name):
        return "timm"
    problems += [why] if why else []
    if tv is None and timm is None:
        raise MissingPackageError(f"--arch {name}: not one of learnloop's architectures, and torchvision and timm can't be "
                          f"imported ({'; '.join(problems)}). To use their models: {INSTALL_HINT}.")
    have = " or ".join(p for p, m in (("torchvision", tv), ("timm", timm)) if m is not None)
    raise SettingError(f"--arch {name}: no such model in {have}; e.g. resnet18, resnet50, efficientnet_b0, "
                     f"convnext_tiny (torchvision.models.list_models() and timm.list_models() list them).")


def hub_model(name: str, n_classes: int, in_channels: int = 3, pretrained: bool = False) -> torch.nn.Module:
    """torchvision's or timm's model `name` with a new head for `n_classes`; `pretrained`: their published
    weights for everything else (downloaded once into their cache). Its `arch_spec` rebuilds it without them: a
    model file holds the trained weights, so loading one needs no download."""
    model = hub_arch(name, n_classes, in_channels, pretrained)
    model.arch_spec["kwargs"]["pretrained"] = False
    return model


@register_arch
def hub_arch(name: str, n_classes: int, in_channels: int = 3, pretrained: bool = False) -> torch.nn.Module:
    """The builder `hub_model` records (`nn.archs`): the torchvision or timm model, published weights or not."""
    source = hub_source(name)
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=pretrained, num_classes=n_classes, in_chans=in_channels)
    import torchvision

    if in_channels != 3:
        raise SettingError(f"torchvision's {name} takes 3-channel (RGB) images, these have {in_channels}: use RGB "
                           f"images, or a timm model (in_chans adapts), or one of learnloop's architectures.")
    if not pretrained:
        return torchvision.models.get_model(name, num_classes=n_classes)
    model = torchvision.models.get_model(name, weights="DEFAULT")
    replace_head(model, n_classes)
    return model


def replace_head(model: torch.nn.Module, n_classes: int) -> torch.nn.Module:
    """Replace the last `Linear` of the model's head (`fc`, `classifier`, `heads`, `head`) by a fresh one for
    `n_classes` outputs; returns the new layer."""
    for attr in ("fc", "classifier", "heads", "head"):
        head = getattr(model, attr, None)
        if isinstance(head, torch.nn.Module):
            break
    else:
        raise ValueError(f"{type(model).__name__} has no fc, classifier or head to replace for {n_classes} classes.")
    parent, key = model, attr
    if not isinstance(head, torch.nn.Linear):
        linears = [(n, m) for n, m in head.named_modules() if isinstance(m, torch.nn.Linear)]
        if not linears:
            raise ValueError(f"{type(model).__name__}.{attr} holds no Linear layer to replace for {n_classes} classes.")
        path, _ = linears[-1]
        *parents, key = path.split(".")
        parent = head
        for p in parents:
            parent = getattr(parent, p)
    old = getattr(parent, key)
    new = torch.nn.Linear(old.in_features, n_classes, bias=old.bias is not None)
    setattr(parent, key, new)
    return new
