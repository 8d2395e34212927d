"""Datasets: in-memory arrays, a label vocabulary, and image folders laid out like Imagenette."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import DataError, MissingFileError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VALID_DIRS = ("val", "valid")


def as_tensor(a: Any, labels: bool = False) -> Tensor:
    """Tensor from a tensor or numpy array, keeping its dtype; integer labels become int64."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = a.copy()  # torch warns on read-only numpy memory
    t = torch.as_tensor(a)
    if labels and not t.is_floating_point() and t.dtype != torch.int64:
        t = t.long()  # what cross-entropy and indexing expect
    return t


class ArrayDataset:
    """`(x[i], y[i])` pairs from two equally long tensors or numpy arrays, with optional per-sample transforms."""

    def __init__(self, x: Any, y: Any, tfm_x: Callable | None = None, tfm_y: Callable | None = None) -> None:
        self.x, self.y = as_tensor(x), as_tensor(y, labels=True)
        if len(self.x) != len(self.y):
            raise ValueError(f"ArrayDataset: x has {len(self.x)} samples but y has {len(self.y)}; "
                             "pass one label per sample (same first dimension).")
        self.tfm_x, self.tfm_y = tfm_x, tfm_y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.x[i], self.y[i]
        return (x if self.tfm_x is None else self.tfm_x(x)), (y if self.tfm_y is None else self.tfm_y(y))

    def __repr__(self) -> str:
        return f"ArrayDataset(x={tuple(self.x.shape)} {self.x.dtype}, y={tuple(self.y.shape)} {self.y.dtype})"


class LabelVocab:
    """Sorted unique labels: `v[i]` is the label of index i, `v.index(label)` the index of a label."""

    def __init__(self, labels: Iterable[Hashable]) -> None:
        self.items = sorted(set(labels))
        self._index = {label: i for i, label in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Hashable:
        return self.items[i]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.items)

    def __contains__(self, label: Hashable) -> bool:
        return label in self._index

    def index(self, label: Hashable) -> int:
        """The index of `label`; KeyError naming it (and the known labels) when it is not in the vocab."""
        try:
            return self._index[label]
        except KeyError:
            shown = ", ".join(map(repr, self.items[:20])) + (", ..." if len(self) > 20 else "")
            raise KeyError(f"label {label!r} is not in the vocab; known labels: {shown}. "
                           "Build the vocab from labels that include it.") from None

    def __repr__(self) -> str:
        return f"LabelVocab({self.items!r})"


def _split_dirs(root: Path) -> dict[str, Path]:
    """{'train': root/train, 'valid': root/val or root/valid}; FileNotFoundError when the tree lacks either."""
    train = root / "train"
    valid = next((root / name for name in VALID_DIRS if (root / name).is_dir()), None)
    if not train.is_dir() or valid is None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else "root does not exist"
        raise MissingFileError(f"image folder {str(root)!r} needs a 'train/' and a 'val/' (or 'valid/') subfolder, "
                                f"each holding one folder of images per class; found: {found}.")
    return {"train": train, "valid": valid}


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*/*") if p.suffix.lower() in IMAGE_EXTS)


class ImageFolder:
    """Images in `root/train/<label>/` or `root/val|valid/<label>/`, decoded to float `(C, H, W)` in [0, 1].

    A file that can't be decoded stops the fit with a `DataError` naming it (with or without loader workers):
    skipping it would silently train on other data than the folder holds."""

    def __init__(self, root: str | Path, split: str = "train", size: int | tuple[int, int] = 64,
                 mode: str = "RGB", vocab: LabelVocab | None = None, tfm_x: Callable | None = None) -> None:
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', not {split!r}.")
        self.root = Path(root)
        dirs = _split_dirs(self.root)
        self.files = _image_files(dirs[split])
        if not self.files:
            raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) in {str(dirs[split])!r}/<label>/; "
                            "put each image in a folder named after its label.")
        # the vocab comes from train's class folders, so train and valid agree on label indices
        self.vocab = vocab or _class_vocab(dirs["train"])
        unknown = sorted({p.parent.name for p in self.files} - set(self.vocab))
        if unknown:
            raise DataError(f"{str(dirs[split])!r} has classes that train/ lacks: {unknown}; train/ has "
                            f"{list(self.vocab)}. Give every class a folder of images in train/, or remove it.")
        self.labels = [self.vocab.index(p.parent.name) for p in self.files]
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mode, self.tfm_x = mode, tfm_x

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        try:
            with Image.open(self.files[i]) as im:
                im = im.convert(self.mode).resize(self.size[::-1], Image.BILINEAR)  # Pillow wants (W, H)
                a = np.array(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as e:  # what Pillow raises for unreadable or truncated files
            raise DataError(f"cannot read image {self.files[i]} ({e.__class__.__name__}: {e}); replace or "
                            f"delete the file, then run again.") from None
        x = torch.from_numpy(a.reshape(*a.shape[:2], -1)).permute(2, 0, 1).float().div_(255)
        return (x if self.tfm_x is None else self.tfm_x(x)), self.labels[i]

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.vocab)} labels, size={self.size})"


def _class_vocab(train: Path) -> LabelVocab:
    """The labels of `train`'s class folders; a DataError unless there are at least two."""
    vocab = LabelVocab(p.name for p in train.iterdir() if p.is_dir())
    if len(vocab) < 2:
        raise DataError(f"{str(train)!r} has {len(vocab)} class folder{'s' * (len(vocab) != 1)} "
                        f"{list(vocab)}: a classifier needs at least two (one folder of images per class).")
    return vocab


def image_folder_split(root: str | Path, size: int | tuple[int, int] = 64, mode: str = "RGB",
                       tfm_x: Callable | None = None) -> tuple[ImageFolder, ImageFolder]:
    """`(train_ds, valid_ds)` from `root/train/` and `root/val/` (or `valid/`), sharing one label vocab."""
    train = ImageFolder(root, "train", size, mode, tfm_x=tfm_x)
    return train, ImageFolder(root, "valid", size, mode, vocab=train.vocab, tfm_x=tfm_x)
