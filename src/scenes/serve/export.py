"""Exporting the bundle's network to a file format (``formats/``), as ``scenes export`` does."""

from __future__ import annotations

from pathlib import Path

from ..choices import CALIBRATION_IMAGES
from ..errors import UsageError
from ..outputs import output_file
from .formats import FORMATS, export


def size_text(path: Path) -> str:
    """A file's size in MB (an OpenVINO ``.xml`` counted with its ``.bin``)."""
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return f"{sum(f.stat().st_size for f in files if f.is_file()) / 1e6:.1f} MB"


def export_format(
    run: str,
    fmt: str = "onnx",
    out: str | None = None,
    calibration: int = CALIBRATION_IMAGES,
    seed: int = 0,
) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if out is not None:
        output_file(out, example=Path(FORMATS[fmt].file).name)
    path = export(run, fmt, out, calibration=calibration, seed=seed)
    calibrated = f", calibrated on {calibration} training images" if FORMATS[fmt].calibrated else ""
    print(
        f"wrote {path} ({size_text(path)}{calibrated}): input 'input' (batch, 3, H, W) "
        "normalised as in model.json, outputs 'logits' and 'features'"
    )
    return 0
