"""Datasets: in-memory arrays, a label vocabulary, and image folders laid out like Imagenette."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import DataError, MissingFileError
from .images import Augment, check_decoder, decode_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
VALID_DIRS = ("val", "valid")


def as_tensor(a: Any, labels: bool = False) -> Tensor:
    """Tensor from a tensor or numpy array, keeping its dtype, except: float64 becomes float32 (as Keras casts), and
    integer labels become int64."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = a.copy()  # torch warns on read-only numpy memory
    t = torch.as_tensor(a)
    if t.dtype == torch.float64:  # numpy's default float: models are float32, and a float64 batch fails in them
        t = t.float()
    if labels and not t.is_floating_point() and t.dtype != torch.int64:
        t = t.long()  # what cross-entropy and indexing expect
    return t


class ArrayDataset:
    """`(x[i], y[i])` pairs from two equally long tensors or numpy arrays (float64 converted to float32 once, here),
    with optional per-sample transforms."""

    pixel_max: float | None = None  # x = raw / pixel_max for data scaled from integers (MNIST: 255): a model file
    # records it, so raw integer arrays are predicted at the scale trained on

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


def image_to_tensor(im: Image.Image) -> Tensor:
    """A PIL image as a uint8 `(C, H, W)` tensor (grey images too: C = 1)."""
    a = np.array(im, dtype=np.uint8)
    return torch.from_numpy(a.reshape(*a.shape[:2], -1)).permute(2, 0, 1)


def _hidden(name: str) -> bool:
    # .ipynb_checkpoints, .git, macOS's ._photo.jpg (AppleDouble metadata, not an image): never data
    return name.startswith(".")


def _is_image(name: str) -> bool:
    return not _hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTS


def _class_dirs(d: Path) -> list[os.DirEntry]:
    with os.scandir(d) as entries:
        return sorted((e for e in entries if e.is_dir() and not _hidden(e.name)), key=lambda e: e.name)


def images_under(d: str) -> list[str]:
    """The image files anywhere under `d` (subfolders too, as torchvision's ImageFolder), sorted; hidden skipped."""
    found = []
    for parent, dirs, names in os.walk(d):
        dirs[:] = sorted(n for n in dirs if not _hidden(n))
        found += [os.path.join(parent, n) for n in sorted(names) if _is_image(n)]
    return found


def labelled_images(d: Path) -> tuple[list[str], list[str]]:
    """(paths, class names) of the images in `d/<class>/` (and below), sorted; names only, no image is opened."""
    files, classes = [], []
    for cls in _class_dirs(d):
        paths = images_under(cls.path)
        files += paths
        classes += [cls.name] * len(paths)
    return files, classes


class ImageFolder:
    """Images in `root/train/<label>/` or `root/val|valid/<label>/` (subfolders of a label's folder included; hidden
    files and folders such as `.ipynb_checkpoints` skipped), as `(C, H, W)` tensors of `size` (H, W).

    Each image is cropped to the centred box of the target's aspect and resized once (JPEGs are decoded at the
    smallest DCT scale that covers it: see `images.decode_image`), or with `augment` (an `Augment`) randomly
    cropped, flipped and colour-jittered from (seed, epoch, index), where the DataLoader sets seed and epoch through
    `seed_epoch`. `dtype=torch.uint8` gives the raw 0..255 pixels (what workers should send: a quarter of the bytes;
    convert once per batch with `ToFloat`), `torch.float32` (default) floats in [0, 1]. Listing the folder opens
    no image. A file that can't be decoded stops the fit with a `DataError` naming it (with or without loader
    workers): skipping it would silently train on other data than the folder holds.
    """

    def __init__(self, root: str | Path, split: str = "train", size: int | tuple[int, int] = 64,
                 mode: str = "RGB", vocab: LabelVocab | None = None, tfm_x: Callable | None = None,
                 augment: Augment | None = None, dtype: torch.dtype = torch.float32, decoder: str = "auto") -> None:
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', not {split!r}.")
        if dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"dtype must be torch.float32 (pixels in [0, 1]) or torch.uint8 (0..255), not {dtype}.")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment (or None), not {type(augment).__name__}; "
                            "e.g. Augment(flip=False).")
        check_decoder(decoder)
        self.root = Path(root)
        dirs = _split_dirs(self.root)
        self.files, classes = labelled_images(dirs[split])
        if not self.files:
            d = dirs[split]
            loose = [n for n in os.listdir(d) if _is_image(n)]
            found = f"{len(loose)} images sit in {str(d)!r} itself" if loose else f"{str(d)!r} has no class folders"
            raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) in a class folder of {str(d)!r}: {found}. Put "
                            f"each image in a folder named after its label: {os.path.join(d, '<label>', '')}.")
        # the vocab comes from train's class folders, so train and valid agree on label indices
        self.vocab = vocab or _class_vocab(dirs["train"])
        present = set(classes)
        empty = [c for c in self.vocab if c not in present] if split == "train" else []
        if empty:  # a class the model could never learn, yet would have an output for
            raise DataError(f"class folder{'s' * (len(empty) > 1)} {empty} in {str(dirs[split])!r} hold no images "
                            f"({', '.join(IMAGE_EXTS)}): add images, or remove the folder.")
        unknown = sorted(present - set(self.vocab))
        if unknown:
            raise DataError(f"{str(dirs[split])!r} has classes that train/ lacks: {unknown}; train/ has "
                            f"{list(self.vocab)}. Give every class a folder of images in train/, or remove it.")
        self.labels = [self.vocab.index(c) for c in classes]
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or not all(isinstance(n, int) and n > 0 for n in self.size):
            raise ValueError(f"size is the (height, width) images are resized to, or one int for squares: positive "
                             f"integers; got {size!r}.")
        self.mode, self.tfm_x, self.augment, self.dtype, self.decoder = mode, tfm_x, augment, dtype, decoder
        self._epoch: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Draw the augmentation of the coming samples from (seed, epoch, index) (the DataLoader calls this)."""
        self._epoch = seed, epoch

    def _rng(self, i: int) -> np.random.Generator:
        # without seed_epoch (a torch DataLoader, plain indexing), the global torch RNG seeds the sample
        seed, epoch = self._epoch or (int(torch.randint(0, 2**62, ())), 0)
        return np.random.default_rng([seed % 2**64, epoch, i])

    def image(self, i: int) -> Image.Image:
        """Image `i` as the model sees it (augmented if `augment`), a PIL image of `size`."""
        try:
            if self.augment is None:
                return decode_image(self.files[i], self.size, self.mode, decoder=self.decoder)
            rng, aspect = self._rng(i), self.size[1] / self.size[0]
            im = decode_image(self.files[i], self.size, self.mode,
                              lambda w, h: self.augment.crop_box(rng, w, h, aspect), self.decoder)
            return self.augment.pixels(rng, im)
        except (OSError, SyntaxError, ValueError) as e:  # what Pillow raises for unreadable or truncated files
            raise DataError(f"cannot read image {self.files[i]} ({e.__class__.__name__}: {e}); replace or "
                            f"delete the file, then run again.") from None

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = image_to_tensor(self.image(i))
        if self.dtype == torch.float32:
            x = x.float().div_(255)
        return (x if self.tfm_x is None else self.tfm_x(x)), self.labels[i]

    def __repr__(self) -> str:
        aug = "" if self.augment is None else f", {self.augment}"
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.vocab)} labels, size={self.size}{aug})"


def _class_vocab(train: Path) -> LabelVocab:
    """The labels of `train`'s class folders; a DataError unless there are at least two."""
    vocab = LabelVocab(e.name for e in _class_dirs(train))
    if len(vocab) < 2:
        raise DataError(f"{str(train)!r} has {len(vocab)} class folder{'s' * (len(vocab) != 1)} "
                        f"{list(vocab)}: a classifier needs at least two (one folder of images per class).")
    return vocab


def image_folder_split(root: str | Path, size: int | tuple[int, int] = 64, mode: str = "RGB",
                       tfm_x: Callable | None = None, augment: Augment | None = None,
                       dtype: torch.dtype = torch.float32, decoder: str = "auto") -> tuple[ImageFolder, ImageFolder]:
    """`(train_ds, valid_ds)` from `root/train/` and `root/val/` (or `valid/`), sharing one label vocab; `augment`
    applies to the train set only (validation images are always centre-cropped and resized)."""
    train = ImageFolder(root, "train", size, mode, tfm_x=tfm_x, augment=augment, dtype=dtype, decoder=decoder)
    return train, ImageFolder(root, "valid", size, mode, vocab=train.vocab, tfm_x=tfm_x, dtype=dtype, decoder=decoder)
