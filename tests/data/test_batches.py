"""Dict batches: split into input and target by key; a real Hugging Face `datasets.Dataset` trains unchanged."""

from __future__ import annotations

import pytest
import torch
from datasets import Array3D, Dataset, Features, Value
from torch.utils.data import DataLoader as TorchDataLoader

from learnloop import Learner
from learnloop.data import ArrayDataset, DataLoader, DataLoaders
from learnloop.data.batches import split_batch, to_device
from learnloop.metrics import accuracy

X, Y = torch.zeros(4, 3), torch.arange(4)


@pytest.mark.parametrize("target", ["label", "labels", "target", "targets", "y"])
def test_the_target_is_found_by_its_usual_name_and_the_input_is_the_other_tensor(target):
    xb, yb = split_batch({"image": X, target: Y, "caption": ["a", "b", "c", "d"]})  # strings are not inputs
    assert xb is X and yb is Y


def test_keys_can_be_given_and_a_list_of_input_keys_gives_a_dict():
    batch = {"input_ids": X, "attention_mask": X > 0, "digit": Y}
    xb, yb = split_batch(batch, x_key=["input_ids", "attention_mask"], y_key="digit")
    assert list(xb) == ["input_ids", "attention_mask"] and yb is Y
    assert split_batch(batch, x_key="input_ids", y_key="digit")[0] is X
    assert split_batch((X, Y)) == (X, Y)  # tuples pass through


def test_an_ambiguous_or_unknown_batch_is_an_error_naming_the_keys():
    with pytest.raises(ValueError, match=r"keys \['a', 'b', 'label'\].*several input tensors \['a', 'b'\].*x_key="):
        split_batch({"a": X, "b": X, "label": Y})
    with pytest.raises(ValueError, match=r"several target-like keys \['label', 'y'\].*y_key="):
        split_batch({"x": X, "label": Y, "y": Y})
    with pytest.raises(ValueError, match=r"no key named like a target"):
        split_batch({"x": X, "digit": Y})
    with pytest.raises(KeyError, match=r"y_key='class' is not a key of the batch; its keys are \['x', 'digit'\]"):
        split_batch({"x": X, "digit": Y}, y_key="class")


def test_to_device_moves_tensors_in_dicts_and_lists():
    moved = to_device([{"a": X}, Y, "text"], torch.device("cpu"))
    assert moved[0]["a"] is X and moved[1] is Y and moved[2] == "text"


def hf_digits(ds: ArrayDataset) -> Dataset:
    """The same samples as a Hugging Face dataset with dict rows, read as torch tensors."""
    features = Features({"image": Array3D((1, 8, 8), "float32"), "label": Value("int64")})
    return Dataset.from_dict({"image": ds.x.numpy(), "label": ds.y.numpy()}, features=features).with_format("torch")


def fit_digits(mlp, train, valid, loader=DataLoader, **kwargs) -> Learner:
    dls = (loader(train, 32, shuffle=True, **kwargs), loader(valid, 128))
    learn = Learner(mlp(0), dls, lr=0.2, metrics=[accuracy], progress=False)
    learn.fit(4)
    return learn


def test_a_hugging_face_dataset_trains_unchanged_and_equals_the_same_data_as_arrays(digits_tensors, make_mlp):
    xt, yt, xv, yv = digits_tensors
    arrays = fit_digits(make_mlp, ArrayDataset(xt, yt), ArrayDataset(xv, yv), seed=0)
    hf = fit_digits(make_mlp, hf_digits(ArrayDataset(xt, yt)), hf_digits(ArrayDataset(xv, yv)), seed=0)
    # the same batches in the same order: the same figures
    for a, b in zip(arrays.history, hf.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["valid_accuracy"] == pytest.approx(a["valid_accuracy"], abs=1e-6)
    assert hf.history[-1]["valid_accuracy"] > 0.9
    gen = torch.Generator().manual_seed(0)
    torch_loaders = fit_digits(make_mlp, hf_digits(ArrayDataset(xt, yt)), hf_digits(ArrayDataset(xv, yv)),
                               loader=TorchDataLoader, generator=gen)  # torch's DataLoader collates the dicts
    assert torch_loaders.history[-1]["valid_accuracy"] > 0.9


def test_a_model_that_takes_a_dict_gets_the_input_keys(digits_tensors):
    xt, yt, _, _ = digits_tensors

    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 10)

        def forward(self, batch: dict) -> torch.Tensor:
            return self.lin(batch["image"].flatten(1) * batch["scale"][:, None])

    rows = Dataset.from_dict({"image": xt.numpy(), "scale": torch.ones(len(xt)).numpy(), "label": yt.numpy()})
    dl = DataLoader(rows.with_format("torch"), 64, shuffle=True, seed=0)
    learn = Learner(TwoInputs(), DataLoaders(dl, dl, x_key=["image", "scale"]), lr=0.5, metrics=[accuracy],
                    progress=False)
    learn.fit(3)
    assert learn.history[-1]["valid_accuracy"] > 0.9
