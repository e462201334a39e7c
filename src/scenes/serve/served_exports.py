"""Which exported file a backend may serve: one made from the bundle's current weights, by
this version of the exporter, whose stamp is believed.

A stamp is the file's own word (``formats/trust.py`` records the exports made here). A file
that is not in that record is run once on a fixed probe batch beside PyTorch
(``export_probe.py``) before it is served; a TorchScript program only ever is when scenes wrote
it here. This sits above the runners (the probe runs both networks); ``formats/`` below them
only writes and stamps files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import export_probe, formats
from .formats import (
    FORMATS,
    StaleExportError,
    default_path,
    export_digest,
    is_current,
    torchscript,
    trust,
    weights_digest,
)

log = logging.getLogger(__name__)


def unbelieved(path: Path, directory: Path, fmt: str) -> str | None:
    """Why ``path``'s stamp is not believed, or None: a file exported here from the bundle's
    current weights is; an ONNX or OpenVINO file from elsewhere is once it has answered like
    PyTorch on the probe batch (then it is recorded); a TorchScript program from elsewhere
    never is (it is not run to be checked)."""
    weights = weights_digest(directory)
    if fmt == "torchscript":
        if torchscript.trusted(path, weights):
            return None
        return "it was not written by scenes on this machine from these weights"
    digest = export_digest(path, fmt)
    if trust.known(fmt, digest, weights):
        return None
    why = export_probe.disagreement(path, directory, fmt, FORMATS[fmt].calibrated)
    if why is None:
        trust.remember(fmt, digest, weights)
        return None
    return f"it was not exported by scenes here and {why}"


def current_export(directory: Path, fmt: str) -> Path:
    """``fmt``'s file in the bundle folder, exported first when it is missing, was made
    from other weights than the bundle's current ones, or its stamp is not believed
    (``unbelieved``: an ONNX or OpenVINO file from elsewhere that answers otherwise than
    PyTorch, a TorchScript program scenes did not write here)."""
    path = default_path(directory, fmt)
    if not path.is_file():
        log.warning("no %s yet: exporting it now", path)
    elif not is_current(path, directory, fmt):
        log.warning(
            "%s was made from other weights or by an older scenes: exporting it again", path
        )
    elif why := unbelieved(path, directory, fmt):
        log.warning(
            "%s is stamped with the bundle's weights, but %s: exporting it again", path, why
        )
    else:
        return path
    return formats.export(directory, fmt, path)  # looked up when called (tests spy on it)


def check_current(path: Path, directory: Path, fmt: str) -> None:
    """Refuse a file the caller named that was not made from the bundle's current weights,
    or whose stamp is not believed (``unbelieved``)."""
    if not is_current(path, directory, fmt):
        raise StaleExportError(
            f"{path} was not exported as {fmt} from {directory}'s current weights (the bundle "
            f"changed since, e.g. by a resumed run): run `scenes export --run {directory} "
            f"--format {fmt}` again"
        )
    # A TorchScript file's bytes are checked as they are loaded (torchscript.load).
    why = None if fmt == "torchscript" else unbelieved(path, directory, fmt)
    if why:
        raise StaleExportError(
            f"{path} is stamped with {directory}'s current weights, but {why}: its stamp is not "
            f"believed. Run `scenes export --run {directory} --format {fmt}` and serve that file"
        )
