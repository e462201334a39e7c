"""The network's input from decoded pixels, in NumPy: what every runner and the int8
calibration feed their networks (no torch, so the exported formats serve without it); and
the pixel limit every server (``scenes app``, ``scenes serve``) checks a photo's header
against before decoding it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..models.meta import BundleMeta

# Decoding more pixels than this could exhaust the server's memory (Pillow's own limit).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def normalize(images: np.ndarray, meta: BundleMeta) -> np.ndarray:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W), (x / 255 - mean) / std: the same float32
    operations, in the same order, as ``data.transforms.normalize_batch`` (bit for bit)."""
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)
    mean = np.asarray(meta.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std


def pixel_count(source) -> int | None:
    """The pixels a file would decode to, from its header alone (a path or a binary file);
    None when it is not an image at all (decoding says so next). A decompression bomb Pillow
    recognises counts as over ``MAX_PIXELS``. No process-wide warning filter is touched."""
    try:
        with Image.open(source) as image:
            return image.width * image.height
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1
    except Exception:
        return None
