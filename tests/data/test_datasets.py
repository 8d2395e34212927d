import hashlib

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from learnloop.data.datasets import digits, mnist
from learnloop.errors import DataError, MissingFileError, UserError


def test_digits_split_sizes_and_dtypes():
    train, valid = digits()
    assert (len(train), len(valid)) == (1437, 360)
    for ds in (train, valid):
        assert ds.x.dtype == torch.float32 and ds.x.shape[1:] == (1, 8, 8) and ds.y.dtype == torch.int64
        assert ds.x.min() == 0 and ds.x.max() == 1
    counts = torch.bincount(torch.cat([train.y, valid.y]), minlength=10)
    assert counts.tolist() == np.bincount(load_digits().target).tolist()  # every sample lands in exactly one split
    again, _ = digits()
    assert torch.equal(again.x, train.x) and not torch.equal(digits(seed=1)[0].y, train.y)
    assert [len(d) for d in digits(valid_pct=0.5)] == [898, 899]
    with pytest.raises(ValueError, match="valid_pct"):
        digits(valid_pct=1.0)


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), "y_train": np.arange(5, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), "y_test": np.arange(3, dtype=np.uint8)}
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_mnist_from_path(tiny_npz):
    path, a = tiny_npz
    train, valid = mnist(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    assert (len(train), len(valid)) == (5, 3)
    assert train.x.shape == (5, 1, 28, 28) and train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert torch.allclose(valid.x[:, 0] * 255, torch.from_numpy(a["x_test"]).float(), atol=1e-4)
    assert valid.y.tolist() == [0, 1, 2]


def test_mnist_env_var_and_cache_dir(tiny_npz, tmp_path, monkeypatch):
    path, _ = tiny_npz
    monkeypatch.setenv("LEARNLOOP_DATA", str(path.parent))
    assert len(mnist()[0]) == 5
    monkeypatch.delenv("LEARNLOOP_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "learnloop").mkdir(parents=True)
    path.rename(tmp_path / "cache" / "learnloop" / "mnist.npz")
    assert len(mnist()[1]) == 3


def test_mnist_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNLOOP_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        mnist()
    msg = str(info.value)
    assert "path=" in msg and "LEARNLOOP_DATA" in msg and str(tmp_path / "cache" / "learnloop" / "mnist.npz") in msg
    with pytest.raises(FileNotFoundError, match="path="):
        mnist(tmp_path / "missing.npz")


def test_mnist_bad_sha256_and_keys(tiny_npz, tmp_path):
    path, _ = tiny_npz
    with pytest.raises(ValueError, match="expected 00"):
        mnist(path, sha256="00" * 32)
    np.savez(tmp_path / "other.npz", x_train=np.zeros(2))
    with pytest.raises(ValueError, match="lacks"):
        mnist(tmp_path / "other.npz")


def test_learnloop_data_is_a_folder_and_a_file_there_is_a_clear_error(tiny_npz, monkeypatch):
    path, _ = tiny_npz
    monkeypatch.setenv("LEARNLOOP_DATA", str(path))
    with pytest.raises(MissingFileError, match=rf"'{path.parent}' \(passed as path=\) is a folder: pass the mnist.npz"):
        mnist(path.parent)
    with pytest.raises(UserError, match=rf"LEARNLOOP_DATA={path} names a file, but it is the folder holding the "
                                        rf"data files: set LEARNLOOP_DATA={path.parent}"):
        mnist()


def test_a_truncated_npz_says_so(tiny_npz, tmp_path):
    path, _ = tiny_npz
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"cut.npz can't be read as an .npz \(BadZipFile"):
        mnist(cut)
