"""ONNX export, read back by onnxruntime: uint8 NHWC pixels in, the probabilities `learn.predict` gives out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from learnloop import Learner, load_learner
from learnloop.data.datasets import image_folder_dls
from learnloop.errors import SettingError
from learnloop.export import export_onnx
from learnloop.nn import image_cnn, simple_cnn

ort = pytest.importorskip("onnxruntime")


def test_onnx_export_gives_predicts_probabilities(photo_folder, tmp_path):
    torch.manual_seed(0)
    dls = image_folder_dls(photo_folder, size=(24, 32), bs=4, augment=False, seed=0)
    learn = Learner(image_cnn(3, 3, widths=(8, 16)), dls, progress=False)
    learn.fit(1)
    learn = load_learner(learn.export(tmp_path / "model.pt"))
    path = export_onnx(learn, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == ["a", "b", "c"] and json.loads(meta["input_size"]) == [24, 32]
    assert meta["colour_mode"] == "RGB"
    files = dls.valid.ds.files
    pixels = torch.stack([learn.dls.pipeline.load(f) for f in files]).permute(0, 2, 3, 1).numpy()  # uint8 NHWC
    assert pixels.dtype == np.uint8 and pixels.shape == (len(files), 24, 32, 3)
    (probs,) = session.run(None, {session.get_inputs()[0].name: pixels})
    expected = torch.stack([learn.predict(f)[2] for f in files]).numpy()
    assert np.abs(probs - expected).max() < 1e-4
    assert not np.allclose(expected, expected[:1])  # the images are told apart: a real comparison


def test_a_learnloop_module_exports_through_its_torch_view(tmp_path, digits_tensors, monkeypatch):
    from learnloop.data import ArrayDataset, DataLoaders

    xt, yt, xv, yv = digits_tensors
    dls = DataLoaders.from_dsets(ArrayDataset(xt, yt), ArrayDataset(xv, yv), bs=64)
    learn = Learner(simple_cnn(in_channels=1, widths=(8, 16)), dls, lr=0.5, progress=False)
    learn.fit(1)
    export = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kwargs):  # a model the dynamo exporter can't trace
        if dynamo:
            raise RuntimeError("untraceable")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    with pytest.warns(UserWarning, match="dynamo ONNX exporter failed .RuntimeError: untraceable.; the TorchScript"):
        session = ort.InferenceSession(str(export_onnx(learn, tmp_path / "digits.onnx")))
    pixels = (xv[:8] * 255).round().to(torch.uint8)  # no pixel_max recorded: integers are scaled by 255
    (probs,) = session.run(None, {"pixels": pixels.permute(0, 2, 3, 1).numpy()})
    expected = torch.stack([learn.predict(p.float() / 255)[2] for p in pixels]).numpy()
    assert np.abs(probs - expected).max() < 1e-4
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"]) == list(range(10))


def test_export_wants_an_image_input(tmp_path, make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), progress=False)
    for dl in (learn.dls.train, learn.dls.valid):  # flat vectors of 64: not an image
        dl.dataset.tensors = (dl.dataset.tensors[0].flatten(1), dl.dataset.tensors[1])
    with pytest.raises(SettingError, match="ONNX export takes image models"):
        export_onnx(learn, tmp_path / "mlp.onnx")
