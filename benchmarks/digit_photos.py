"""Write a folder of camera-size JPEG "photos", each a drawn digit (the class) on a photo-like background.

Run: `python benchmarks/digit_photos.py ROOT [--n 4000] [--seed 0]` writes ROOT/train/<digit>/*.jpg and
ROOT/val/<digit>/*.jpg (every 6th image of each digit in val), each image's shorter side 160-500 px, 4:3 to
16:9 either way up. The digit (one of several DejaVu fonts that ship with matplotlib, 35-70% of the shorter
side, tilted, at a random place in the central square, light on dark or dark on light in a random hue) sits on
a background of smooth colour gradients, blurred shapes and sensor-like noise, so a model must find it rather
than read the pixel statistics."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf")
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0)


def background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth colour gradients (a coarse random grid, upsampled), blurred ellipses and rectangles, grain."""
    grid = rng.integers(0, 256, (rng.integers(2, 5), rng.integers(2, 5), 3), dtype=np.uint8)
    im = Image.fromarray(grid).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(2, 7)):  # out-of-focus objects
        x0, y0 = rng.integers(-w // 4, w), rng.integers(-h // 4, h)
        x1, y1 = x0 + rng.integers(w // 8, w // 2), y0 + rng.integers(h // 8, h // 2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    im = im.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(2, 12))))
    grain = rng.normal(0, rng.uniform(2, 8), (h, w, 1))  # sensor noise, the same in every channel
    return Image.fromarray(np.clip(np.asarray(im, np.float32) + grain, 0, 255).astype(np.uint8))


def draw_digit(rng: np.random.Generator, im: Image.Image, digit: int) -> Image.Image:
    """`im` with `digit` drawn on it: a random font, size, tilt and place, in a colour that stands out."""
    w, h = im.size
    size = int(min(w, h) * rng.uniform(0.35, 0.7))
    font = ImageFont.truetype(str(FONT_DIR / FONTS[rng.integers(len(FONTS))]), size)
    stroke = int(rng.integers(1, max(2, size // 14)))
    glyph = Image.new("L", (2 * size, 2 * size))
    ImageDraw.Draw(glyph).text((size, size), str(digit), fill=255, font=font, anchor="mm", stroke_width=stroke)
    glyph = glyph.rotate(float(rng.uniform(-20, 20)), Image.BICUBIC)
    glyph = glyph.crop(glyph.getbbox())
    side = min(w, h)  # inside the central square, so a centre crop keeps it (as a photographer frames a subject)
    x = int(rng.integers((w - side) // 2, max((w - side) // 2 + 1, (w + side) // 2 - glyph.width)))
    y = int(rng.integers((h - side) // 2, max((h - side) // 2 + 1, (h + side) // 2 - glyph.height)))
    # a random hue, light on a dark patch and dark on a light one, as a subject stands out from its background
    patch = np.asarray(im.crop((x, y, x + glyph.width, y + glyph.height)).convert("L"), np.float32).mean()
    hue = rng.integers(0, 256, 3).astype(np.float32)
    rgb = 170 + hue / 3 if patch < 128 else hue / 3
    colour = Image.new("RGB", glyph.size, tuple(int(c) for c in rgb))
    im.paste(colour, (x, y), glyph.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 1.2)))))
    return im


def digit_photo(seed: int, digit: int, min_side: int = 160, max_side: int = 500) -> Image.Image:
    """One RGB photo of `digit`, its shorter side in [min_side, max_side], fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    short = int(rng.integers(min_side, max_side + 1))
    long = int(short * ASPECTS[rng.integers(len(ASPECTS))])
    w, h = (long, short) if rng.random() < 0.7 else (short, long)  # most photos are landscape
    return draw_digit(rng, background(rng, w, h), digit)


def write_digit_photos(root: str | Path, n: int = 4000, seed: int = 0, n_classes: int = 10, min_side: int = 160,
                       max_side: int = 500, valid_every: int = 6, quality: int = 90) -> Path:
    """`n` JPEGs in `root/train/<digit>/` and (every `valid_every`-th of each digit) `root/val/<digit>/`."""
    root = Path(root)
    for i in range(n):
        digit = i % n_classes
        split = "val" if (i // n_classes) % valid_every == valid_every - 1 else "train"  # every class alike
        folder = root / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        digit_photo(seed * 1_000_003 + i, digit, min_side, max_side).save(folder / f"{i:06d}.jpg", quality=quality)
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="folder to write (ROOT/train/<digit>, ROOT/val/<digit>)")
    p.add_argument("--n", type=int, default=4000, help="number of images (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-side", type=int, default=160, help="smallest shorter side in px (default 160)")
    p.add_argument("--max-side", type=int, default=500, help="largest shorter side in px (default 500)")
    args = p.parse_args()
    t = time.perf_counter()
    write_digit_photos(args.root, args.n, args.seed, min_side=args.min_side, max_side=args.max_side)
    size = sum(f.stat().st_size for f in args.root.rglob("*.jpg"))
    print(f"wrote {args.n} JPEGs ({size / 2**20:.0f} MiB) to {args.root}/train and {args.root}/val "
          f"in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
