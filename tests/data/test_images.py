"""Image folders of JPEGs: decoding (simplejpeg and Pillow), crops, seeded augmentation, the uint8 path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from learnloop.data import Augment, DataLoader, ImageFolder, Normalize, ToFloat, image_folder_split
from learnloop.data import images
from learnloop.data.datasets import image_folder_dls, image_stats
from learnloop.errors import DataError

QUADRANTS = ((230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30))  # top-left, top-right, bottom-l, bottom-r
DECODERS = ["pillow", pytest.param("simplejpeg", marks=pytest.mark.skipif(
    images.jpeg_decoder() != "simplejpeg", reason="simplejpeg is not installed"))]


def quadrant_jpeg(path, w: int = 800, h: int = 600, quality: int = 95) -> None:
    """A JPEG whose four quadrants are the flat colours of QUADRANTS."""
    a = np.empty((h, w, 3), np.uint8)
    for k, rgb in enumerate(QUADRANTS):
        a[(k // 2) * h // 2:(k // 2 + 1) * h // 2, (k % 2) * w // 2:(k % 2 + 1) * w // 2] = rgb
    Image.fromarray(a).save(path, quality=quality)


@pytest.mark.parametrize("decoder", DECODERS)
def test_jpeg_read_back_with_dct_scaling_and_crop_boxes(tmp_path, decoder):
    path = tmp_path / "q.jpg"
    quadrant_jpeg(path)  # 800x600: decoded at 1/4 or 3/8 scale for a 32 px crop
    for k, rgb in enumerate(QUADRANTS):  # a box inside one quadrant shows only that colour, at every DCT scale
        x0, y0 = (k % 2) * 400 + 40, (k // 2) * 300 + 40
        im = images.decode_image(str(path), (24, 32), box_for=lambda w, h: (x0, y0, x0 + 320, y0 + 220),
                                 decoder=decoder)
        a = np.asarray(im, np.int16)
        assert a.shape == (24, 32, 3) and np.abs(a - rgb).max() <= 12
    whole = np.asarray(images.decode_image(str(path), (30, 40), decoder=decoder), np.int16)  # 4:3 box: everything
    assert np.abs(whole[5, 5] - QUADRANTS[0]).max() <= 12 and np.abs(whole[25, 35] - QUADRANTS[3]).max() <= 12
    grey = images.decode_image(str(path), (16, 16), mode="L", decoder=decoder)
    assert grey.mode == "L" and grey.size == (16, 16)


def test_decoders_agree_and_pillow_serves_without_simplejpeg(tmp_path, monkeypatch, photo_folder):
    path = tmp_path / "p.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8)).resize(
        (1200, 900), Image.BICUBIC).save(path, quality=92)
    pil = np.asarray(images.decode_image(str(path), (48, 48), decoder="pillow"), np.float32)
    if images.jpeg_decoder() == "simplejpeg":
        sj = np.asarray(images.decode_image(str(path), (48, 48), decoder="simplejpeg"), np.float32)
        assert np.abs(sj - pil).mean() < 4  # different DCT scales (3/8 vs 1/2), the same picture
    monkeypatch.setattr(images, "_simplejpeg", lambda: None)
    assert images.jpeg_decoder() == "pillow"
    assert np.array_equal(np.asarray(images.decode_image(str(path), (48, 48)), np.float32), pil)
    with pytest.raises(ImportError, match=r"learnloop\[jpeg\]"):
        ImageFolder(photo_folder, decoder="simplejpeg")


def exif_jpeg(a: np.ndarray, orientation: int, byte_order: bytes = b"II") -> bytes:
    """A JPEG of `a` with an EXIF APP1 segment holding only Orientation, in either TIFF byte order."""
    order = "little" if byte_order == b"II" else "big"
    u16, u32 = (lambda v: v.to_bytes(2, order)), (lambda v: v.to_bytes(4, order))
    tiff = byte_order + u16(42) + u32(8) + u16(1) + u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0) + u32(0)
    app1 = b"Exif\0\0" + tiff
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95)
    jpeg = buf.getvalue()
    return jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_photos_are_read_upright_as_exif_orientation_says(tmp_path, decoder, orientation):
    quadrant_jpeg(tmp_path / "q.jpg", 160, 96)  # a phone stores a portrait photo as landscape plus an EXIF tag
    stored = np.asarray(Image.open(tmp_path / "q.jpg"))
    for byte_order in (b"II", b"MM"):
        data = exif_jpeg(stored, orientation, byte_order)
        (tmp_path / "o.jpg").write_bytes(data)
        assert images.jpeg_orientation(data) == Image.open(tmp_path / "o.jpg").getexif()[0x0112] == orientation
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg"))
    want = np.asarray(upright.resize((24, 24), Image.BILINEAR, box=images.centre_box(*upright.size, 1.0)), np.float32)
    got = np.asarray(images.decode_image(str(tmp_path / "o.jpg"), (24, 24), decoder=decoder), np.float32)
    assert np.abs(got - want).mean() < 4  # the same picture, the same way up (a wrong turn is off by ~100)
    full = images.decode_image(str(tmp_path / "o.jpg"), (30, 20), decoder=decoder, box_for=lambda w, h: (0, 0, w, h))
    assert full.size == (20, 30) and np.abs(np.asarray(full, np.float32) - np.asarray(
        upright.resize((20, 30), Image.BILINEAR), np.float32)).mean() < 4


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 4000), h=st.integers(1, 4000), low=st.floats(0.01, 1.0), aspect=st.floats(0.2, 5.0),
       seed=st.integers(0, 2**32 - 1))
def test_crop_boxes_stay_inside_the_image(w, h, low, aspect, seed):
    rng = np.random.default_rng(seed)
    for box in (Augment(scale=(low, 1.0)).crop_box(rng, w, h, aspect), images.centre_box(w, h, aspect)):
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


def test_centre_crop_keeps_the_middle_of_a_wide_image(tmp_path):
    a = np.full((90, 160, 3), 200, np.uint8)
    a[:, :25], a[:, -25:] = 0, 0  # black bands well outside the central 90x90 square
    for label in ("x", "y"):  # a classifier's folder needs two classes
        (tmp_path / "train" / label).mkdir(parents=True)
    (tmp_path / "val").mkdir()
    Image.fromarray(a).save(tmp_path / "train" / "x" / "wide.png")
    Image.fromarray(a).save(tmp_path / "train" / "y" / "wide.png")
    x, y = ImageFolder(tmp_path, size=16)[0]
    assert x.shape == (3, 16, 16) and y == 0 and x.min() > 0.7  # no black: the bands were cropped away


def test_folder_errors(photo_folder):
    root = photo_folder
    with pytest.raises(ValueError, match="size is the"):
        ImageFolder(root, size=0)
    with pytest.raises(ValueError, match="dtype must be"):
        ImageFolder(root, dtype=torch.float16)
    with pytest.raises(TypeError, match="Augment"):
        ImageFolder(root, augment=True)
    with pytest.raises(ValueError, match="decoder must be one of"):
        ImageFolder(root, decoder="turbo")
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="brightness"):
        Augment(brightness=1.0)
    (root / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = ImageFolder(root)
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):
        ds[ds.files.index(str(root / "train" / "a" / "broken.jpg"))]


def test_listing_reads_no_image(tmp_path):
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            for k in range(5):
                (tmp_path / split / label / f"{k}.jpg").touch()  # empty: opening one would fail
    train, valid = image_folder_split(tmp_path)
    assert (len(train), len(valid)) == (10, 10) and train.labels == [0] * 5 + [1] * 5
    assert train.files[0].endswith("cat/0.jpg")


def augmented_loader(root, n_workers: int = 0, seed: int | None = 3, dtype=torch.uint8, **kw) -> DataLoader:
    ds = ImageFolder(root, size=24, augment=Augment(), dtype=dtype)
    return DataLoader(ds, 5, shuffle=True, seed=seed, n_workers=n_workers, **kw)


def epochs(dl: DataLoader, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [batch for _ in range(n) for batch in dl]


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x0, x1) and torch.equal(y0, y1) for (x0, y0), (x1, y1) in zip(a, b))


def test_augmentation_is_seeded_per_sample_with_or_without_workers(photo_folder):
    root = photo_folder
    first = epochs(augmented_loader(root), 2)
    assert same(first, epochs(augmented_loader(root), 2))  # same seed, same batches
    assert same(first, epochs(augmented_loader(root, n_workers=2), 2))  # workers draw the same crops
    assert not same(first[:4], first[4:])  # a new epoch: new order and new crops
    assert not same(first, epochs(augmented_loader(root, seed=4), 2))
    ds = ImageFolder(root, size=24, augment=Augment())
    ds.seed_epoch(3, 0)
    a, b = ds[2][0], ds[2][0]
    ds.seed_epoch(3, 1)
    assert torch.equal(a, b) and not torch.equal(a, ds[2][0])  # (seed, epoch, index) decides, nothing else
    plain = ImageFolder(root, size=24, dtype=torch.uint8)
    assert not torch.equal(a, plain[2][0].float() / 255)


@pytest.mark.parametrize("seed", [3, None])
@pytest.mark.parametrize("n_workers", [0, 2])
def test_augmented_resume_mid_epoch_is_exact(photo_folder, seed, n_workers):
    root = photo_folder  # 18 images: 4 batches of 5 per epoch
    torch.manual_seed(0)
    whole = epochs(augmented_loader(root, seed=seed), 3)

    torch.manual_seed(0)
    dl = augmented_loader(root, n_workers=n_workers, seed=seed)
    got = epochs(dl, 1)
    it = iter(dl)
    got += [next(it) for _ in range(2)]
    buf = io.BytesIO()
    torch.save({"loader": dl.state_dict(), "rng": torch.get_rng_state()}, buf)  # what a checkpoint holds
    dl.close()
    del dl, it
    torch.rand(50)  # the killed run moved the global RNG on

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    torch.set_rng_state(ckpt["rng"])
    dl = augmented_loader(root, n_workers=n_workers, seed=seed)
    dl.load_state_dict(ckpt["loader"])
    got += epochs(dl, 2)
    assert same(got, whole)


def test_uint8_path_equals_the_float_path_after_normalisation(photo_folder):
    root = photo_folder
    norm = Normalize([0.4, 0.45, 0.5], [0.2, 0.25, 0.3])
    floats = epochs(augmented_loader(root, dtype=torch.float32, batch_tfms=norm), 2)
    uint8 = augmented_loader(root, n_workers=2, batch_tfms=[ToFloat(), norm])
    raw = augmented_loader(root)
    for (xf, yf), (xu, yu), (xr, _) in zip(floats, epochs(uint8, 2), epochs(raw, 2), strict=True):
        assert xr.dtype == torch.uint8 and xu.dtype == xf.dtype == torch.float32 and torch.equal(yf, yu)
        assert torch.allclose(xf, xu, rtol=0, atol=1e-6)
    assert torch.equal(uint8.decode(xu), xr)  # decode undoes both: back to the pixels


def test_augment_switches(photo_folder):
    root = photo_folder
    plain = ImageFolder(root, size=(18, 24), dtype=torch.uint8)
    full_frame = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0)
    still = ImageFolder(root, size=(18, 24), dtype=torch.uint8, augment=Augment(flip=False, **full_frame))
    flips = ImageFolder(root, size=(18, 24), dtype=torch.uint8, augment=Augment(**full_frame))
    mirrored = 0
    for epoch in range(4):
        for ds in (still, flips):
            ds.seed_epoch(0, epoch)
        for i in range(len(plain)):
            x = plain[i][0]
            assert torch.equal(still[i][0], x)  # the whole frame, no flip, no jitter: the plain image
            f = flips[i][0]
            assert torch.equal(f, x) or torch.equal(f, x.flip(-1))
            mirrored += torch.equal(f, x.flip(-1)) and not torch.equal(f, x)
    assert 0.3 < mirrored / (4 * len(plain)) < 0.7
    bright = ImageFolder(root, size=24, dtype=torch.uint8, augment=Augment(**{**full_frame, "brightness": 0.5}))
    ratios = []
    for i in range(len(plain)):
        bright.seed_epoch(0, i)
        ratios.append(bright[i][0].float().mean().item() / ImageFolder(root, size=24, dtype=torch.uint8)[i][0]
                      .float().mean().item())
    assert min(ratios) < 0.9 and max(ratios) > 1.1 and all(0.45 < r < 1.55 for r in ratios)


def test_image_folder_dls_sends_uint8_and_measures_stats(photo_folder):
    root = photo_folder
    dls = image_folder_dls(root, size=24, bs=4, seed=0)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (4, 3, 24, 24) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert dls.train.ds.dtype == torch.uint8 and dls.train.ds.augment == Augment() and dls.valid.ds.augment is None
    norm = dls.train.batch_tfms[-1]
    assert torch.allclose(norm.mean, image_stats(ImageFolder(root, size=24)).mean)
    x = torch.cat([dls.valid.decode(xb) for xb, _ in dls.valid])  # stats near the data's own
    assert x.dtype == torch.uint8 and abs(x.float().mean().item() / 255 - norm.mean.mean().item()) < 0.1
    assert image_folder_dls(root, size=24, augment=False, stats=([0.5] * 3, [0.2] * 3)).train.ds.augment is None


def test_listing_takes_what_a_photo_folder_holds(make_photo_folder):
    root = make_photo_folder("p")
    a = np.full((20, 30, 3), 90, np.uint8)
    Image.fromarray(a).save(root / "train" / "a" / "scan.tif")
    (root / "train" / "a" / "2023").mkdir()
    Image.fromarray(a).save(root / "train" / "a" / "2023" / "nested.jpg")  # a label's subfolders count
    for hidden in (root / "train" / ".ipynb_checkpoints", root / "val" / ".ipynb_checkpoints"):
        hidden.mkdir()
        Image.fromarray(a).save(hidden / "copy.jpg")  # never a class
    (root / "train" / "b" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata")
    ds = ImageFolder(root)
    assert list(ds.vocab) == ["a", "b", "c"] and len(ds) == 6 * 3 + 2
    assert ds.files.count(str(root / "train" / "a" / "2023" / "nested.jpg")) == 1
    assert all(ds[i][0].shape == (3, 64, 64) for i in range(len(ds)))  # the .tif, and no ._ file, read
    (root / "train" / "d").mkdir()
    with pytest.raises(DataError, match=r"class folders? \['d'\] in .*train' hold no images"):
        ImageFolder(root)


def test_16_bit_grey_pngs_keep_their_levels(tmp_path):
    a = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    x = np.asarray(images.decode_image(str(tmp_path / "deep.png"), (32, 32), box_for=lambda w, h: (0, 0, w, h)))
    assert x.shape == (32, 32, 3) and abs(x.mean() - 127.5) < 2 and x.min() == 0 and x.max() == 255
