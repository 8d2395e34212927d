"""From-scratch neural-net pieces: Parameter, Module, layers, hooks and losses."""

from .archs import ARCHS, arch_of, build_arch, register_arch
from .functional import cross_entropy, log_softmax, logsumexp, nll_loss
from .hooks import Hook, Hooks, LayerStats
from .hub import hub_model  # registers torchvision/timm models by name (`hub_arch`) for model files
from .layers import (AdaptivePool, ConvLayer, Flatten, Lambda, Linear, ReLU, Sequential,
                     simple_cnn)
from .models import bn_cnn, image_cnn
from .module import HookHandle, IncompatibleKeys, Module, Parameter
from .torch_view import TorchModule, to_torch

__all__ = ["ARCHS", "arch_of", "build_arch", "register_arch", "Parameter", "Module", "HookHandle", "IncompatibleKeys", "TorchModule", "to_torch",
           "Linear", "ConvLayer", "Sequential", "AdaptivePool", "Flatten", "ReLU", "Lambda",
           "simple_cnn", "bn_cnn", "image_cnn", "hub_model", "Hook", "Hooks", "LayerStats", "cross_entropy", "log_softmax",
           "logsumexp", "nll_loss"]
