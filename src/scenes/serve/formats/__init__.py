"""Every form a bundle's network leaves scenes in, behind one interface.

Each format writes one file (OpenVINO: an ``.xml`` with its ``.bin``) in the bundle folder, made
from the bundle's weights and stamped with their SHA-256 and the exporter's version, so a file
made from other weights (the bundle was rewritten by a resumed run) is exported again, never
served. Every file takes the normalised batch (B, 3, H, W) and returns ``logits`` and
``features``; decoding, normalisation, the temperature, thresholds and the acceptance of unknown
photos stay in ``model.json`` and the Python that reads it, shared by every backend.

| format | file | runtime |
|---|---|---|
| onnx | model.onnx | ONNX Runtime |
| onnx-int8 | model.int8.onnx | ONNX Runtime (static QDQ quantisation, per-channel weights) |
| torchscript | model.torchscript.pt | PyTorch (traced; CPU and CUDA) |
| openvino | openvino/model.xml | OpenVINO (``pip install 'scenes[openvino]'``) |
| openvino-int8 | openvino-int8/model.xml | OpenVINO, quantised by NNCF |

int8 formats are calibrated on images of the run's own training split (``calibration.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from ...choices import CALIBRATION_IMAGES
from ...errors import UsageError
from ...models.bundle import resolve_bundle_dir, weights_digest

log = logging.getLogger(__name__)

DIGEST_KEY = "scenes.weights_sha256"
VERSION_KEY = "scenes.export_version"
FORMAT_KEY = "scenes.format"
# 2: a second output, the penultimate features (the acceptance of unknown photos needs them)
# 3: int8 weights in 7 bits but depthwise ones (8-bit ones overflow on x86 CPUs without VNNI)
EXPORT_VERSION = "3"
OPENVINO_INSTALL = "pip install 'scenes[openvino]' (OpenVINO and NNCF)"


class StaleExportError(UsageError):
    """An exported file was made from other weights than the bundle's current ones."""


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # relative to the bundle folder
    needs: tuple[str, ...]  # modules its export and runtime import
    install: str
    what: str
    calibrated: bool = False  # int8: calibrated on training images

    def missing(self) -> str | None:
        """Why this format cannot be used here (a module not installed), or None."""
        absent = [m for m in self.needs if find_spec(m) is None]
        if absent:
            return f"{', '.join(absent)} not installed: {self.install}"
        return None


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", "model.onnx", ("onnx", "onnxruntime"), "pip install onnxruntime", "ONNX"),
        Format(
            "onnx-int8",
            "model.int8.onnx",
            ("onnx", "onnxruntime"),
            "pip install onnxruntime",
            "ONNX, int8 (static, QDQ, per-channel weights)",
            calibrated=True,
        ),
        Format(
            "torchscript", "model.torchscript.pt", ("torch",), "pip install torch", "TorchScript"
        ),
        Format("openvino", "openvino/model.xml", ("openvino",), OPENVINO_INSTALL, "OpenVINO IR"),
        Format(
            "openvino-int8",
            "openvino-int8/model.xml",
            ("openvino", "nncf"),
            OPENVINO_INSTALL,
            "OpenVINO IR, int8 (NNCF post-training quantisation)",
            calibrated=True,
        ),
    )
}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def require(fmt: Format) -> None:
    reason = fmt.missing()
    if reason:
        raise UsageError(f"the {fmt.name} format needs {reason}")


def default_path(run_or_bundle: str | Path, fmt: str) -> Path:
    return resolve_bundle_dir(run_or_bundle) / get_format(fmt).file


def _module(fmt: Format):
    """The module that writes and reads ``fmt``'s files (imported when needed: each imports
    its runtime)."""
    if fmt.name.startswith("onnx"):
        from . import onnx_files as module
    elif fmt.name == "torchscript":
        from . import torchscript as module
    else:
        from . import openvino_files as module
    return module


def recorded(path: str | Path, fmt: str) -> dict[str, str]:
    """The stamp a file records (empty for a file made by other tools)."""
    fmt_ = get_format(fmt)
    return _module(fmt_).read_stamp(Path(path))


def is_current(path: str | Path, run_or_bundle: str | Path, fmt: str = "onnx") -> bool:
    """Made from the bundle's current weights, by this version of the exporter, as ``fmt``."""
    path = Path(path)
    if not path.is_file():
        return False
    found = recorded(path, fmt)
    return (
        found.get(DIGEST_KEY) == weights_digest(run_or_bundle)
        and found.get(VERSION_KEY) == EXPORT_VERSION
        and found.get(FORMAT_KEY, fmt) == fmt
    )


def export(
    run_or_bundle: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    calibration: int = CALIBRATION_IMAGES,
    seed: int = 0,
) -> Path:
    """Write ``fmt`` (default path: in the bundle folder) and check it loads; returns the
    file. int8 formats are calibrated on ``calibration`` training images drawn with ``seed``."""
    fmt_ = get_format(fmt)
    require(fmt_)
    directory = resolve_bundle_dir(run_or_bundle)
    out = Path(out) if out else default_path(directory, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = {DIGEST_KEY: weights_digest(directory), VERSION_KEY: EXPORT_VERSION, FORMAT_KEY: fmt}
    if fmt_.calibrated:
        stamp["scenes.calibration"] = f"{calibration} training images, seed {seed}"
    _module(fmt_).write(directory, out, stamp, fmt=fmt, calibration=calibration, seed=seed)
    return out


def current_export(directory: Path, fmt: str) -> Path:
    """``fmt``'s file in the bundle folder, exported first when it is missing or was made
    from other weights than the bundle's current ones (or, for TorchScript, was not written
    by scenes on this machine: it is a program, see ``torchscript.py``)."""
    path = default_path(directory, fmt)
    if not path.is_file():
        log.warning("no %s yet: exporting it now", path)
    elif not is_current(path, directory, fmt):
        log.warning(
            "%s was made from other weights or by an older scenes: exporting it again", path
        )
    elif fmt == "torchscript" and not _module(FORMATS[fmt]).trusted(path):
        log.warning("%s was not written by scenes here: exporting it again", path)
    else:
        return path
    return export(directory, fmt, path)


def check_current(path: Path, directory: Path, fmt: str) -> None:
    """Refuse a file the caller named that was not made from the bundle's current weights."""
    if not is_current(path, directory, fmt):
        raise StaleExportError(
            f"{path} was not exported as {fmt} from {directory}'s current weights (the bundle "
            f"changed since, e.g. by a resumed run): run `scenes export --run {directory} "
            f"--format {fmt}` again"
        )
