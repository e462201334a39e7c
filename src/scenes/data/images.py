"""Read any image file as an RGB uint8 array of the model's input size.

This single function is the preprocessing contract shared by training (the decoded cache),
evaluation and serving, so a photo is seen the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

# Bump when anything below changes the pixels a file decodes to: decoded-image caches built
# by an older version are then rebuilt instead of silently disagreeing with inference.
PREPROCESS_VERSION = 1

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


def load_image(
    source: str | Path | BinaryIO | Image.Image, size: int, interpolation: str = "bilinear"
) -> np.ndarray:
    """RGB uint8 array of shape (size, size, 3). Raises OSError/ValueError for unusable files."""
    if isinstance(source, Image.Image):
        return np.asarray(resize_square(to_rgb(source), size, interpolation), dtype=np.uint8)
    with Image.open(source) as opened:
        # draft() lets JPEG decode at a reduced scale: big photos decode much faster.
        if opened.format == "JPEG":
            opened.draft("RGB", (size, size))
        return np.asarray(resize_square(to_rgb(opened), size, interpolation), dtype=np.uint8)
