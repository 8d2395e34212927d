import numpy as np
import pytest
import torch
from PIL import Image

from learnloop import Learner
from learnloop.data import ArrayDataset, DataLoader, ImageFolder, LabelVocab, image_folder_split
from learnloop.data.datasets import image_folder
from learnloop.errors import DataError

COLORS = {"cat": (255, 0, 0), "dog": (0, 0, 255), "emu": (0, 255, 0)}


def write_tree(root, valid_name="val"):
    """train/{cat,dog,emu}/ and <valid_name>/{cat,dog}/ of solid-colour PNGs of assorted sizes and modes."""
    for split, n in (("train", 3), (valid_name, 2)):
        for label, rgb in COLORS.items():
            if split != "train" and label == "emu":
                continue
            (root / split / label).mkdir(parents=True)
            for k in range(n):
                im = Image.new("RGB", (10 + 7 * k, 12 + 3 * k), rgb)
                (im.convert("RGBA") if k == 1 else im).save(root / split / label / f"{k}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def test_array_dataset_from_numpy_keeps_dtypes():
    x, y = np.arange(24, dtype=np.uint8).reshape(6, 2, 2), np.arange(6, dtype=np.int32)
    ds = ArrayDataset(x, y)
    assert ds.x.dtype == torch.uint8 and ds.y.dtype == torch.int64 and len(ds) == 6
    xi, yi = ds[4]
    assert xi.tolist() == [[16, 17], [18, 19]] and yi.item() == 4
    assert ArrayDataset(np.zeros((2, 3), np.float16), np.array([0.5, 1.5], np.float16)).x.dtype == torch.float16


def test_array_dataset_converts_float64_to_float32_once_and_a_float64_regression_trains():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3))  # numpy's default: float64
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1
    ds = ArrayDataset(x, y[:, None])
    assert ds.x.dtype == ds.y.dtype == torch.float32
    assert torch.equal(ds.x, torch.from_numpy(x).float())
    torch.manual_seed(0)
    learn = Learner(torch.nn.Linear(3, 1), DataLoader(ds, bs=32, shuffle=True, seed=0), torch.nn.functional.mse_loss,
                    lr=0.1, progress=False)
    learn.fit(20)
    assert learn.history[-1]["train_loss"] < 1e-4 < learn.history[0]["train_loss"]
    ro = np.arange(4)
    ro.flags.writeable = False
    assert ArrayDataset(ro, ro).x.tolist() == [0, 1, 2, 3]


def test_array_dataset_length_mismatch():
    with pytest.raises(ValueError, match="x has 3 samples but y has 2"):
        ArrayDataset(torch.zeros(3, 2), torch.zeros(2))


def test_label_vocab():
    v = LabelVocab(["dog", "cat", "dog", "emu"])
    assert len(v) == 3 and list(v) == ["cat", "dog", "emu"] and v[1] == "dog"
    assert [v.index(s) for s in ("emu", "cat")] == [2, 0] and "cat" in v and "cow" not in v
    with pytest.raises(KeyError, match="'cow' is not in the vocab"):
        v.index("cow")


@pytest.mark.parametrize("valid_name", ["val", "valid"])
def test_image_folder(tmp_path, valid_name):
    train, valid = image_folder_split(write_tree(tmp_path, valid_name), size=(8, 6))
    assert (len(train), len(valid)) == (9, 4)
    assert list(train.vocab) == list(valid.vocab) == ["cat", "dog", "emu"]
    assert sorted(train.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2] and sorted(valid.labels) == [0, 0, 1, 1]
    for ds in (train, valid):
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (3, 8, 6) and x.dtype == torch.float32  # resized to (H, W); RGBA -> RGB
            rgb = torch.tensor(COLORS[ds.vocab[y]], dtype=torch.float32) / 255
            assert torch.allclose(x, rgb.view(3, 1, 1).expand_as(x))
    gray = ImageFolder(tmp_path, "train", size=4, mode="L")
    assert gray[0][0].shape == (1, 4, 4)
    assert image_folder is image_folder_split


def test_image_folder_through_workers(tmp_path):
    train, _ = image_folder_split(write_tree(tmp_path), size=5)
    serial = list(DataLoader(train, 4, shuffle=True, seed=0))
    parallel = list(DataLoader(train, 4, shuffle=True, seed=0, n_workers=2))
    assert len(serial) == len(parallel) == 3
    for (x0, y0), (x2, y2) in zip(serial, parallel):
        assert x0.shape[1:] == (3, 5, 5) and torch.equal(x0, x2) and torch.equal(y0, y2)


def test_image_folder_layout_errors(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"'val/' \(or 'valid/'\).*found: \['train'\]"):
        image_folder_split(tmp_path)
    (tmp_path / "valid").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path, "train")
    for name in ("a.jpg", "b.png", ".c.jpg"):
        (tmp_path / "valid" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"2 images sit in '.*valid' itself. Put each image in a folder named after "
                                         r"its label: .*valid/<label>/"):
        ImageFolder(tmp_path, "valid")
    with pytest.raises(ValueError, match="'train' or 'valid'"):
        ImageFolder(tmp_path, "test")


def test_image_folders_that_cannot_train_a_classifier(tmp_path):
    root = write_tree(tmp_path)
    (root / "val" / "cow").mkdir()
    Image.new("RGB", (4, 4)).save(root / "val" / "cow" / "0.png")
    lacks = r"has classes that train/ lacks: \['cow'\]; train/ has \['cat', 'dog', 'emu'\]"
    with pytest.raises(DataError, match=lacks):
        image_folder_split(root)
    for label in ("dog", "emu"):
        for f in (root / "train" / label).iterdir():
            f.unlink()
        (root / "train" / label).rmdir()
    with pytest.raises(DataError, match=r"has 1 class folder \['cat'\]: a classifier needs at least two"):
        ImageFolder(root, "train")


def test_a_corrupt_image_is_named_in_this_process_and_from_workers(tmp_path):
    train, _ = image_folder_split(write_tree(tmp_path), size=5)
    bad = tmp_path / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated download
    messages = []
    for n_workers in (0, 2):
        with pytest.raises(DataError, match=rf"cannot read image {bad} \(") as info:
            list(DataLoader(train, 4, n_workers=n_workers))
        messages.append(str(info.value))
    assert messages[0] == messages[1]
