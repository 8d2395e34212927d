"""Reading images fast and augmenting them: JPEGs decoded at the smallest DCT scale that still covers the crop at
the target size, one resize, and seeded per-sample augmentation (random resized crop, flip, colour jitter)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
from PIL import Image, ImageStat

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in pixels of the full-size image
DECODERS = ("auto", "simplejpeg", "pillow")
JPEG_MAGIC = b"\xff\xd8"
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")


@cache
def _simplejpeg() -> ModuleType | None:
    """The optional `simplejpeg` module (`pip install learnloop[jpeg]`), or None when it is not installed."""
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def jpeg_decoder() -> str:
    """The decoder `decoder="auto"` uses for JPEGs: 'simplejpeg' when installed, else 'pillow'."""
    return "simplejpeg" if _simplejpeg() is not None else "pillow"


def centre_box(w: int, h: int, aspect: float) -> Box:
    """The largest box of aspect `aspect` (width / height) centred in a `w` x `h` image."""
    if w / h > aspect:  # wider than the target: keep the full height
        cw = min(h * aspect, w)
        return ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
    ch = min(w / aspect, h)
    return (0.0, (h - ch) / 2, float(w), (h + ch) / 2)


def check_decoder(decoder: str) -> None:
    """ValueError for an unknown decoder name, ImportError for simplejpeg when it is not installed."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(map(repr, DECODERS))}, not {decoder!r}.")
    if decoder == "simplejpeg" and _simplejpeg() is None:
        raise ImportError("decoder='simplejpeg' needs the simplejpeg package: pip install 'learnloop[jpeg]' "
                          "(or simplejpeg), or use decoder='auto', which falls back to Pillow.")


def _scale_box(box: Box, w: int, h: int, new_w: int, new_h: int) -> Box:
    """`box` of a `w` x `h` image in the same image scaled to `new_w` x `new_h`, clamped inside it."""
    sx, sy = new_w / w, new_h / h  # float rounding must not put an edge a hair outside: Pillow refuses that
    return (max(0.0, box[0] * sx), max(0.0, box[1] * sy),
            min(float(new_w), box[2] * sx), min(float(new_h), box[3] * sy))


def _min_decoded_size(box: Box, w: int, h: int, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) the whole image must keep when scaled down so that `box` still covers `size` (H, W)."""
    f = max(size[1] / (box[2] - box[0]), size[0] / (box[3] - box[1]))
    return min(w, math.ceil(w * f)), min(h, math.ceil(h * f))


# EXIF Orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does)
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def jpeg_orientation(data: bytes) -> int:
    """The EXIF Orientation (1-8) in a JPEG's bytes, 1 when it has none: read from the APP1 segment's first IFD."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:  # start of scan: the metadata segments all come before it
            break
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\0\0":
            tiff = data[i + 10:i + 2 + length]
            order = "little" if tiff[:2] == b"II" else "big"
            ifd = int.from_bytes(tiff[4:8], order)
            for k in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
                entry = tiff[ifd + 2 + 12 * k:ifd + 14 + 12 * k]
                if int.from_bytes(entry[:2], order) == 0x0112:
                    value = int.from_bytes(entry[8:10], order)
                    return value if 1 <= value <= 8 else 1
            return 1
        i += 2 + length
    return 1


def _crop_resize(decode: Callable[[tuple[int, int]], Image.Image], w: int, h: int, orientation: int,
                 size: tuple[int, int], box_for: Callable[[int, int], Box]) -> Image.Image:
    """Crop `box_for` of the upright image and resize it to `size`, from a `w` x `h` JPEG stored in `orientation`:
    `decode(min_wh)` decodes it at a DCT scale keeping at least `min_wh` (width, height) of the stored image."""
    turned = orientation >= 5  # stored on its side: the upright image is h x w
    uw, uh = (h, w) if turned else (w, h)
    box = box_for(uw, uh)
    min_w, min_h = _min_decoded_size(box, uw, uh, size)
    im = decode((min_h, min_w) if turned else (min_w, min_h))
    if orientation in UPRIGHT:  # turned after the DCT scaling: on the small image, not the full one
        im = im.transpose(UPRIGHT[orientation])
    return im.resize(size[::-1], Image.BILINEAR, box=_scale_box(box, uw, uh, im.width, im.height))


def _decode_simplejpeg(data: bytes, size: tuple[int, int], mode: str,
                       box_for: Callable[[int, int], Box]) -> Image.Image | None:
    """The crop, resized, through simplejpeg (libjpeg-turbo, any M/8 DCT scale); None when it can't (CMYK...)."""
    sj = _simplejpeg()

    def decode(min_wh: tuple[int, int]) -> Image.Image:
        a = sj.decode_jpeg(data, colorspace="GRAY" if mode == "L" else "RGB", min_width=min_wh[0],
                           min_height=min_wh[1])
        return Image.fromarray(a[..., 0] if mode == "L" else a)

    try:
        h, w = sj.decode_jpeg_header(data)[:2]
        return _crop_resize(decode, w, h, jpeg_orientation(data), size, box_for)
    except ValueError:  # a JPEG libjpeg-turbo can't convert (CMYK, 12-bit): Pillow reads those
        return None


def decode_image(path: str | Image.Image, size: tuple[int, int], mode: str = "RGB",
                 box_for: Callable[[int, int], Box] | None = None, decoder: str = "auto") -> Image.Image:
    """The image at `path` (or a PIL image) in `mode`, upright (EXIF orientation applied, as a photo viewer shows
    it), cropped to `box_for(w, h)` (default: the centred box of the target aspect) and resized to `size` (H, W), in
    one resize. JPEGs are decoded at the smallest DCT scale that still covers the crop at `size` (simplejpeg when
    installed and `decoder` allows, else Pillow's `draft`)."""
    box_for = box_for or (lambda w, h: centre_box(w, h, size[1] / size[0]))
    if isinstance(path, Image.Image):  # the caller's image: read as it is, never drafted (that would change it)
        return _decode_pillow(path, size, mode, box_for, draft=False)
    if decoder != "pillow" and mode in ("RGB", "L") and _simplejpeg() is not None:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == JPEG_MAGIC:
            im = _decode_simplejpeg(data, size, mode, box_for)
            if im is not None:
                return im
    with Image.open(path) as im:
        return _decode_pillow(im, size, mode, box_for)


def _decode_pillow(im: Image.Image, size: tuple[int, int], mode: str, box_for: Callable[[int, int], Box],
                   draft: bool = True) -> Image.Image:
    """`decode_image` through Pillow, from an opened image (drafted at a DCT scale while a JPEG is not loaded yet)."""

    def decode(min_wh: tuple[int, int]) -> Image.Image:
        if draft and im.format == "JPEG":  # libjpeg's DCT scaling by 1/2, 1/4 or 1/8: less to decode and to resize
            im.draft("L" if mode == "L" else "RGB", min_wh)
        if im.mode.startswith("I"):  # 16-bit grey (PNG, TIFF): convert() would clip it to white
            return Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)).convert(mode)
        return im if im.mode == mode else im.convert(mode)

    return _crop_resize(decode, *im.size, im.getexif().get(0x0112, 1), size, box_for)


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


@dataclass(frozen=True)
class Augment:
    """Training augmentation for image folders, per sample on uint8 pixels in the loader's workers.

    A random resized crop (a box of `scale` of the image's area and aspect `ratio` times the target's, resized to
    the target size), a horizontal flip with probability 1/2 when `flip` (turn it off where a mirror image changes
    the label: text, digits, left/right), and colour jitter: brightness, contrast and saturation each scaled by a
    factor drawn from `[1 - x, 1 + x]`. Every draw comes from the generator the dataset makes for the sample from
    (seed, epoch, index), so a seeded loader gives the same images with or without workers, and after a resume.
    """

    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"Augment(scale=...) is the range of crop areas as fractions of the image, "
                             f"0 < low <= high <= 1; got {self.scale}.")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"Augment(ratio=...) is the range of crop aspect ratios, 0 < low <= high; "
                             f"got {self.ratio}.")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"Augment({name}=...) is a jitter strength in [0, 1), got {getattr(self, name)}.")

    def crop_box(self, rng: np.random.Generator, w: int, h: int, aspect: float) -> Box:
        """A random box of a `w` x `h` image: area in `scale`, aspect `ratio` x `aspect` (torchvision's recipe)."""
        log_ratio = (math.log(self.ratio[0] * aspect), math.log(self.ratio[1] * aspect))
        for _ in range(10):
            area = w * h * _uniform(rng, self.scale)
            r = math.exp(_uniform(rng, log_ratio))
            cw, ch = math.sqrt(area * r), math.sqrt(area / r)
            if cw <= w and ch <= h:
                x0, y0 = float(rng.uniform(0, w - cw)), float(rng.uniform(0, h - ch))
                return (x0, y0, x0 + cw, y0 + ch)
        return centre_box(w, h, min(max(w / h, math.exp(log_ratio[0])), math.exp(log_ratio[1])))

    def pixels(self, rng: np.random.Generator, im: Image.Image) -> Image.Image:
        """The flip and colour jitter, on the resized image."""
        if self.flip and rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        # every factor is drawn even when unused, so the stream of draws never depends on the settings' zeros
        b, c, s = (_uniform(rng, (1 - x, 1 + x)) for x in (self.brightness, self.contrast, self.saturation))
        if self.saturation and im.mode == "RGB":  # towards (s < 1) or away from (s > 1) the grey image
            im = Image.blend(im.convert("L").convert(im.mode), im, s)
        if self.brightness or self.contrast:  # x -> b * (c * x + (1 - c) * grey mean): one lookup table per band
            means = ImageStat.Stat(im).mean
            grey = sum(w * m for w, m in zip(GREY_WEIGHTS, means)) if len(means) == 3 else means[0]
            lut = np.clip(b * (c * np.arange(256) + (1 - c) * grey), 0, 255).round().astype(np.uint8)
            im = im.point(lut.tolist() * len(means))
        return im
