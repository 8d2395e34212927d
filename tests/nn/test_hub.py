"""torchvision/timm models by name: the install hint when they can't be imported, and the head swap on a model of
torchvision's shape (torchvision itself can't be installed beside the CPU torch here: a stand-in module serves
`list_models`/`get_model` with a resnet-shaped torch.nn model)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from learnloop.nn.hub import hub_model, hub_source, replace_head


class TinyResNet(torch.nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(torch.relu(self.bn1(self.conv1(x)))), 1))


@pytest.fixture
def torchvision_like(monkeypatch):
    """A `torchvision` whose models are TinyResNets: 'published' weights are those of seed 7."""
    calls = []

    def get_model(name, weights=None, **kwargs):
        calls.append((name, weights, kwargs))
        torch.manual_seed(7 if weights else 0)
        return TinyResNet(**kwargs)

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(list_models=lambda: ["resnet18"], get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", module)
    monkeypatch.setitem(sys.modules, "timm", None)
    return calls


def test_without_torchvision_and_timm_one_message_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails, as it does with a mismatched build
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"--arch resnet18: .*pip install torchvision --index-url .*pip install timm"):
        hub_source("resnet18")


def test_torchvision_model_gets_a_head_for_the_classes_and_keeps_published_weights(torchvision_like):
    scratch = hub_model("resnet18", n_classes=5)
    assert torchvision_like[-1] == ("resnet18", None, {"num_classes": 5}) and scratch.fc.out_features == 5
    pretrained = hub_model("resnet18", n_classes=5, pretrained=True)
    assert torchvision_like[-1][1] == "DEFAULT"
    torch.manual_seed(7)
    published = TinyResNet()
    assert torch.equal(pretrained.conv1.weight, published.conv1.weight)  # the body: the published weights
    assert pretrained.fc.out_features == 5 and pretrained(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match="no such model in torchvision"):
        hub_source("resnet1800")
    with pytest.raises(ValueError, match="3-channel"):
        hub_model("resnet18", n_classes=5, in_channels=1)


def test_replace_head_swaps_the_last_linear_of_a_classifier():
    model = torch.nn.Module()
    model.features = torch.nn.Conv2d(3, 4, 1)
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Linear(4, 1000))
    new = replace_head(model, 3)
    assert model.classifier[1] is new and new.out_features == 3


def test_a_hub_model_records_how_to_rebuild_it_without_downloading(torchvision_like):
    from learnloop.nn import arch_of, build_arch

    model = hub_model("resnet18", n_classes=5, pretrained=True)
    spec = arch_of(model)
    assert spec == {"name": "hub_arch", "kwargs": {"name": "resnet18", "n_classes": 5, "in_channels": 3,
                                                   "pretrained": False}}
    rebuilt = build_arch(spec)
    assert torchvision_like[-1] == ("resnet18", None, {"num_classes": 5}) and rebuilt.fc.out_features == 5
