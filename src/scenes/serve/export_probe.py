"""How far an ONNX or OpenVINO file's stamp is believed: a file scenes did not export here is
checked once against PyTorch before it is served.

A stamp (the weights' SHA-256 in the file's metadata) is the file's own word: anyone can copy
it into a file made from other weights. So a file that is not in the record of exports made
here (``trust.py``, keyed on the file's and the weights' digests) is run once on a fixed probe
batch beside the bundle's PyTorch network: it is believed, and recorded, when every
probability (softmax of the logits) is within the format's tolerance of PyTorch's and the top
class is the same wherever PyTorch's top two are further apart than that. A TorchScript file
is a program and is never run to be checked (``torchscript.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROBE_IMAGES = 8
# fp32 formats match PyTorch within 1e-4 (tests/test_one_answer.py); int8 ones differ by
# design, by at most 0.14 on test_one_answer's corpus (its INT8_TOLERANCE is 0.2). A file made
# from other weights differs by far more.
TOLERANCE = {"fp32": 1e-3, "int8": 0.2}


def probe_images(size: int, count: int = PROBE_IMAGES) -> np.ndarray:
    """``count`` smooth colour images (uint8, (count, size, size, 3)), the same every time: a
    4 x 4 grid of random colours (seed 0) enlarged bilinearly."""
    from PIL import Image

    grids = np.random.default_rng(0).integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    resample = Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(g).resize((size, size), resample)) for g in grids])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def disagreement(path: Path, directory: Path, fmt: str, calibrated: bool) -> str | None:
    """How the ``fmt`` file at ``path`` answers otherwise than ``directory``'s PyTorch network
    on the probe batch, or None when it answers alike."""
    from ..models.bundle import read_meta
    from .runners import TorchRunner, export_runner

    meta = read_meta(directory)
    images = probe_images(meta.image_size)
    expected = _softmax(TorchRunner(directory, meta, "cpu").run(images)[0])
    found = _softmax(export_runner(fmt, path, meta, "cpu", directory).run(images)[0])
    tolerance = TOLERANCE["int8" if calibrated else "fp32"]
    largest = float(np.abs(found - expected).max())
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > tolerance
    changed = int(((found.argmax(axis=1) != expected.argmax(axis=1)) & clear).sum())
    if largest <= tolerance and not changed:
        return None
    return (
        f"on {len(images)} probe images its probabilities differ from PyTorch's by up to "
        f"{largest:.3g} (at most {tolerance:g} for {fmt}) and its top class differs on {changed}"
    )
