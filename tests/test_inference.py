"""The model file, `load_learner`, `learn.predict` and the test loader, on real JPEGs and a real digits run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import learnloop
from learnloop import Learner, load_learner
from learnloop.data.datasets import image_folder_dls
from learnloop.errors import CheckpointError
from learnloop.metrics import accuracy
from learnloop.model_file import build_model, read_model_file
from learnloop.nn import build_arch, image_cnn
from learnloop.optim import AdamW


@pytest.fixture
def photo_learner(photo_folder):
    """An image_cnn trained 2 epochs on the small photo folder (32 px, no augmentation)."""
    torch.manual_seed(0)
    dls = image_folder_dls(photo_folder, size=32, bs=4, augment=False, seed=0)
    learn = Learner(image_cnn(3, 3), dls, metrics=[accuracy], opt_func=AdamW, progress=False)
    learn.fit_one_cycle(2, 2e-3)
    return learn


def test_model_file_is_plain_data_that_rebuilds_the_model(photo_learner, tmp_path):
    path = photo_learner.export(tmp_path / "model.pt")
    state = torch.load(path, weights_only=True)  # nothing but tensors and plain containers
    assert state["arch"] == {"name": "image_cnn", "kwargs": {"in_channels": 3, "n_classes": 3,
                                                             "widths": [32, 64, 128, 256]}}
    assert state["classes"] == ["a", "b", "c"] and "opt" not in state
    norm = photo_learner.dls.valid.batch_tfms[1]
    assert state["input"] == {"kind": "image", "size": [32, 32], "mode": "RGB", "resize": "centre-crop", "bs": 4,
                              "mean": norm.mean.tolist(), "std": norm.std.tolist()}
    model = build_model(read_model_file(tmp_path))  # a run folder finds its model.pt
    for (k, v), w in zip(photo_learner.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(v, w), k


def test_predict_takes_a_path_a_sample_a_pil_image_and_an_array(photo_learner, tmp_path):
    ds = photo_learner.dls.valid.ds
    learn = load_learner(photo_learner.export(tmp_path / "model.pt"))
    probs_in_training = torch.cat([p.softmax(-1) for p in [photo_learner.get_preds()[0]]])
    for i, file in enumerate(ds.files):
        label, index, probs = learn.predict(file)
        assert torch.allclose(probs, probs_in_training[i], atol=1e-5)  # the valid pipeline exactly
        assert label == ["a", "b", "c"][index] and index == int(probs.argmax())
        assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
        # the README's `learn.predict(dls.valid.ds[0][0])`: a uint8 sample goes through ToFloat and Normalize
        assert torch.equal(photo_learner.predict(ds[i][0])[2], probs)
        # a decoded photo in memory: full decode (no DCT scaling), so close to the file's, not equal
        with Image.open(file) as im:
            from_pil = learn.predict(im)[2]
            assert torch.equal(learn.predict(np.asarray(im.convert("RGB")))[2], from_pil)
        assert torch.allclose(from_pil, probs, atol=0.05)
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) \(C, H, W\); got \(3, 16, 16\)"):
        learn.predict(torch.zeros(3, 16, 16, dtype=torch.uint8))


def test_test_dl_with_workers_gives_predicts_probabilities(photo_learner, tmp_path):
    learn = load_learner(photo_learner.export(tmp_path / "model.pt"))
    files = photo_learner.dls.valid.ds.files
    dl = learn.dls.test_dl(files, bs=4, n_workers=2)
    preds, _ = learn.get_preds(dl)
    dl.close()
    assert preds.shape == (len(files), 3)
    expected = torch.stack([learn.predict(f)[2] for f in files])
    assert torch.allclose(preds.softmax(-1), expected, atol=1e-5)
    labelled = learn.dls.test_dl(files, labels=photo_learner.dls.valid.ds.labels)
    assert learn.validate(labelled) == pytest.approx(photo_learner.validate(), rel=1e-6)


def test_a_fresh_process_predicts_from_the_model_file_alone(photo_learner, photo_folder, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    photo_learner.export(alone / "model.pt")
    photo = alone / "photo.jpg"
    photo.write_bytes((photo_folder / "val" / "b" / "0.jpg").read_bytes())
    expected = photo_learner.predict(str(photo))
    script = textwrap.dedent("""
        import sys, learnloop
        label, index, probs = learnloop.load_learner("model.pt").predict("photo.jpg")
        assert "learnloop.data.datasets" not in sys.modules  # no training data was needed
        print(label, index, *probs.tolist())
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=alone, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    label, index, *probs = result.stdout.split()
    assert (label, int(index)) == expected[:2]
    assert torch.allclose(torch.tensor([float(p) for p in probs]), expected[2], atol=1e-6)


def test_a_digits_run_predicts_raw_arrays(run_learnloop, tmp_path):
    result = run_learnloop("fit", "digits", "--epochs", "2", "--out", "run", "--no-tensorboard")
    assert result.returncode == 0, result.stderr
    learn = load_learner(tmp_path / "run")
    assert read_model_file(tmp_path / "run")["input"]["pixel_max"] == 16
    digits = load_digits()
    raw = digits.images.astype(np.uint8)[:200]  # 0..16, as scikit-learn has them
    predicted = [learn.predict(a)[1] for a in raw]
    assert np.mean(np.array(predicted) == digits.target[:200]) > 0.85
    as_floats = learn.predict(torch.tensor(digits.images[0] / 16, dtype=torch.float32)[None])
    assert as_floats[1] == predicted[0] and torch.allclose(as_floats[2], learn.predict(raw[0])[2])


def test_an_older_model_file_still_loads(photo_learner, tmp_path):
    old = tmp_path / "old.pt"  # what `learnloop fit` wrote before the model file held arch and pipeline
    torch.save({"classes": ["a", "b", "c"], "model": photo_learner.model.state_dict(),
                "opt": photo_learner.opt.state_dict()}, old)
    fresh = Learner(image_cnn(3, 3), photo_learner.dls, opt_func=AdamW, progress=False).load(old)
    assert torch.equal(fresh.get_preds()[0], photo_learner.get_preds()[0])
    with pytest.raises(CheckpointError, match=r"pass it, load_learner\(path, model=model\)"):
        load_learner(old)
    learn = load_learner(old, model=image_cnn(3, 3))
    assert learn.dls.vocab == ["a", "b", "c"]
    xb = photo_learner.dls.valid.one_batch()[0]  # no pipeline recorded: samples as the model takes them
    assert learn.predict(xb[0])[0] == photo_learner.dls.vocab[int(photo_learner.get_preds()[0][0].argmax())]
    with pytest.raises(ValueError, match="no input pipeline"):
        learn.predict(photo_learner.dls.valid.ds[0][0])


def test_a_model_of_your_own_needs_its_code(tmp_path, make_dls, make_mlp):
    learn = Learner(make_mlp(), make_dls(), lr=0.1, progress=False)
    learn.fit(1)
    path = learn.export(tmp_path / "mlp.pt")
    assert torch.load(path, weights_only=True)["arch"] is None
    with pytest.raises(CheckpointError, match="holds weights but not how to build the model"):
        load_learner(path)
    x = make_dls().valid.dataset.tensors[0][0]
    assert torch.equal(load_learner(path, model=make_mlp(seed=1)).predict(x)[2], learn.predict(x)[2])


def test_build_arch_rebuilds_with_a_new_head():
    spec = learnloop.nn.arch_of(image_cnn(3, 10))
    model = build_arch(spec, n_classes=4)
    assert model[-1].out_features == 4 and learnloop.nn.arch_of(model)["kwargs"]["n_classes"] == 4
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'"):
        build_arch({"name": "resnet9", "kwargs": {}})


def test_predict_reads_photos_upright_as_their_exif_says(photo_learner, tmp_path):
    upright = np.zeros((60, 90, 3), np.uint8)  # a bright left half, a dark ramp on the right: which way up shows
    upright[:, :45] = 230
    upright[:, 45:] = np.linspace(0, 80, 60, dtype=np.uint8)[:, None, None]
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter: a viewer rotates it back
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    learn = load_learner(photo_learner.export(tmp_path / "model.pt"))
    load = learn.dls.pipeline.load
    as_shown, as_stored = load(tmp_path / "upright.jpg").float(), load(tmp_path / "phone.jpg").float()
    assert (as_shown - as_stored).abs().mean() < 6  # the same picture, give or take JPEG and resampling (3.9)
    turned = load(Image.open(tmp_path / "upright.jpg").transpose(Image.Transpose.ROTATE_90)).float()
    assert (as_shown - turned).abs().mean() > 30  # read as stored, it would be another picture
    assert torch.allclose(learn.predict(tmp_path / "phone.jpg")[2], learn.predict(tmp_path / "upright.jpg")[2],
                          atol=0.02)
