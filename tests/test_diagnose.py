"""Clear errors for the usual mistakes, raised at the batch that has them and naming the fix."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset

from learnloop import Learner
from learnloop.data import ArrayDataset, DataLoader, LabelVocab
from learnloop.nn import simple_cnn


def _fit(model, x, y, bs: int = 4, loss_func=F.cross_entropy, **dl_kwargs):
    dl = DataLoader(ArrayDataset(x, y), bs, **dl_kwargs)
    Learner(model, dl, loss_func=loss_func, lr=0.01, progress=False).fit(1)


def _conv_net(c: int = 3) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(c, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


def test_channels_last_images_into_a_torch_conv():
    x = torch.rand(8, 8, 8, 3)
    with pytest.raises(ValueError, match=r"channels-last \(NHWC\).*learnloop\.data\.ToCHW") as info:
        _fit(_conv_net(), x, torch.zeros(8, dtype=torch.long))
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error stays visible


def test_channels_last_images_into_learnloops_conv():
    with pytest.raises(ValueError, match=r"channels-last \(NHWC\).*ToCHW"):
        _fit(simple_cnn(in_channels=3, n_classes=2, widths=(4,)), torch.rand(8, 8, 8, 3), torch.zeros(8).long())


def test_uint8_images_into_a_float_model():
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"uint8.*Normalize"):
        _fit(_conv_net(), x, torch.zeros(8, dtype=torch.long))


@pytest.mark.parametrize("loss_func", [F.cross_entropy, None], ids=["torch", "learnloop"])
def test_label_out_of_range_in_a_later_batch_names_label_classes_and_vocab(loss_func):
    y = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 5, 1])  # the bad label is in the third batch
    ds = ArrayDataset(torch.randn(12, 4), y)
    ds.vocab = LabelVocab(["cat", "dog"])
    kwargs = {} if loss_func is None else {"loss_func": loss_func}  # None: learnloop's cross_entropy
    learn = Learner(torch.nn.Linear(4, 2), DataLoader(ds, 4), lr=0.01, progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"Label 5 is outside \[0, 2\).*batch 2.*\['cat', 'dog'\]") as info:
        learn.fit(1)
    assert isinstance(info.value.__cause__, (IndexError, RuntimeError))


@pytest.mark.filterwarnings("ignore:Using a target size")  # mse_loss warns before it raises
def test_output_and_target_shapes_that_dont_match():
    no_pool = torch.nn.Conv2d(3, 2, 3)  # (N, 2, 6, 6) out, for (N,) class targets
    with pytest.raises(ValueError, match=r"output has shape \(4, 2, 6, 6\).*targets have shape \(4,\).*n_classes"):
        _fit(no_pool, torch.rand(8, 3, 8, 8), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"output has shape \(4, 3\).*targets have shape \(4, 2\)"):
        _fit(torch.nn.Linear(5, 3), torch.rand(8, 5), torch.rand(8, 2), loss_func=F.mse_loss)


def test_an_error_nothing_explains_is_raised_unchanged():
    class Broken(torch.nn.Linear):
        def forward(self, x):
            raise KeyError("my bug")

    with pytest.raises(KeyError, match="my bug"):
        _fit(Broken(3, 2), torch.rand(8, 3), torch.zeros(8, dtype=torch.long))


def test_empty_train_loader_names_size_bs_and_drop_last():
    dl = TorchDataLoader(TensorDataset(torch.rand(3, 2), torch.zeros(3).long()), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match=r"no batches: its dataset has 3 samples, bs=8, drop_last=True"):
        Learner(torch.nn.Linear(2, 2), dl, progress=False).fit(1)


class FailsAt:
    """A dataset whose item 13 raises."""

    def __len__(self):
        return 32

    def __getitem__(self, i):
        if i == 13:
            raise ValueError("corrupt sample 13")
        return torch.ones(2), 0


def test_a_worker_error_raises_in_the_main_process_within_seconds():
    dl = DataLoader(FailsAt(), 4, n_workers=2, mp_context="fork")
    learn = Learner(torch.nn.Linear(2, 2), dl, lr=0.01, progress=False)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker failed: ValueError: corrupt sample 13"):
        learn.fit(1)
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()


def test_empty_train_loader_without_a_dataset():
    with pytest.raises(ValueError, match=r"train loader \(list\) yields no batches"):
        Learner(torch.nn.Linear(2, 2), [], progress=False).fit(1)
