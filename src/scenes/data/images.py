"""Read any image file as an RGB uint8 array of the model's input size.

This single function is the preprocessing contract shared by training (the decoded cache),
evaluation and serving, so a photo is seen the same way everywhere. ``Preprocess`` names
its settings (size, resampling, how a non-square photo becomes square); the model bundle
records them, so every serving path decodes as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps

# Bump when anything below changes the pixels a file decodes to: decoded-image caches built
# by an older version are then rebuilt instead of silently disagreeing with inference.
PREPROCESS_VERSION = 1

# How a photo of any aspect ratio becomes the square the model takes.
RESIZE_MODES = ("squash", "crop", "pad")
Resize = Literal["squash", "crop", "pad"]

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: EXIF rotation applied, transparency composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping at 255.
        arr = np.asarray(image, dtype=np.float64)
        top = arr.max() or 1.0
        image = Image.fromarray((arr * (255.0 / top)).astype(np.uint8))
    return image.convert("RGB")


def resize_square(image: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    """Squash to size x size (scene photos keep their whole content; Intel is square anyway)."""
    if image.size == (size, size):
        return image
    if interpolation not in RESAMPLING:
        raise ValueError(f"unknown interpolation {interpolation!r}; one of {', '.join(RESAMPLING)}")
    return image.resize((size, size), RESAMPLING[interpolation], reducing_gap=3.0)


def to_square(
    image: Image.Image,
    size: int,
    interpolation: str = "bilinear",
    resize: str = "squash",
    fill: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """``squash``: the whole photo, stretched; ``crop``: the centre square, aspect kept;
    ``pad``: the whole photo, aspect kept, on a ``fill``-coloured square (letterbox)."""
    width, height = image.size
    if resize == "squash" or width == height:
        return resize_square(image, size, interpolation)
    if resize == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return resize_square(image.crop((left, top, left + side, top + side)), size, interpolation)
    if resize != "pad":
        raise ValueError(f"unknown resize {resize!r}; one of {', '.join(RESIZE_MODES)}")
    scale = size / max(width, height)
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = image.resize(inner, RESAMPLING[interpolation], reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(shrunk, ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas


def load_image(
    source: str | Path | BinaryIO | Image.Image,
    size: int,
    interpolation: str = "bilinear",
    resize: str = "squash",
    fill: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """RGB uint8 array of shape (size, size, 3). Raises OSError/ValueError for unusable files."""
    if isinstance(source, Image.Image):
        return np.asarray(to_square(to_rgb(source), size, interpolation, resize, fill))
    with Image.open(source) as opened:
        # draft() lets JPEG decode at a reduced scale: big photos decode much faster. It keeps
        # both sides at least ``size``, enough for every resize mode.
        if opened.format == "JPEG":
            opened.draft("RGB", (size, size))
        return np.asarray(to_square(to_rgb(opened), size, interpolation, resize, fill))


@dataclass(frozen=True)
class Preprocess:
    """How a file becomes the model's input pixels: what a bundle records and a cache keys."""

    size: int
    interpolation: str = "bilinear"
    resize: str = "squash"
    fill: tuple[int, int, int] = (0, 0, 0)  # the letterbox colour of ``pad``

    @classmethod
    def for_mean(cls, size: int, interpolation: str, resize: str, mean: list[float]) -> Preprocess:
        """Padding in the colour that normalises to zero: the network sees "nothing" there,
        as it does at the zero-padded border of a convolution."""
        fill = tuple(min(255, max(0, round(m * 255))) for m in mean)
        return cls(size, interpolation, resize, fill)

    def load(self, source: str | Path | BinaryIO | Image.Image) -> np.ndarray:
        return load_image(source, self.size, self.interpolation, self.resize, self.fill)

    def key(self) -> str:
        return f"{self.size}|{self.interpolation}|{self.resize}|{self.fill}"
