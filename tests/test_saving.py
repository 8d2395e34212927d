"""load_checkpoint on files it can't use: each a CheckpointError naming the file and what is wrong with it."""

from __future__ import annotations

import pytest
import torch

from learnloop import load_checkpoint
from learnloop.errors import CheckpointError, MissingFileError, UserError
from learnloop.saving import atomic_save


@pytest.fixture
def good(tmp_path):
    """A real checkpoint file: a dict of a model's and optimizer's state."""
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 64)).sum().backward()
    opt.step()
    return atomic_save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "good.ckpt")


def _zero_middle(data: bytes) -> bytes:
    # the pickle sits after the tensors' data in torch's zip: zero a stretch of it, keep the zip directory
    start = data.index(b"data.pkl") + 40
    return data[:start] + bytes(64) + data[start + 64:]


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[: len(b) - 30], "is not a readable checkpoint: it is truncated, or not a file torch.save wrote"),
    (lambda b: b"", "is not a readable checkpoint: it is empty"),
    (lambda b: b"PK\x03\x04" + bytes(200), "is not a readable checkpoint: it is truncated"),
    (_zero_middle, "is damaged"),
])  # fmt: skip
def test_unreadable_files_are_named_with_what_is_wrong(good, damage, says):
    good.write_bytes(damage(good.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(good)
    assert str(info.value).startswith(f"{good} {says}") and "weights_only" not in str(info.value)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_a_good_file_loads_and_what_is_not_a_dict_is_refused(good, tmp_path):
    assert set(load_checkpoint(good)) == {"model", "opt"}
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list.pt holds a list, not a checkpoint dict"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(MissingFileError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "none.pt")
