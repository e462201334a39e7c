"""TorchScript: the bundle's network traced (with its features output), frozen, saved.

A TorchScript file is a program, not data: loading one runs the code inside it. So the
``torchscript`` backend loads only a file scenes itself wrote on this machine from the
bundle's current weights (``trust.py`` says exactly what that means). The bytes are hashed in
memory before they are written, and the bytes that were hashed are the bytes that are loaded:
no file can be swapped in between. A symbolic link is never followed. A file that arrived
with a bundle from elsewhere, or was changed since, is exported again from the weights
instead. The stamp is an extra file inside the archive (``extra/scenes.json``), read with
``zipfile`` without loading the program.
"""

from __future__ import annotations

import errno
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

from ... import atomic
from ...errors import UsageError
from ...models.bundle import load_bundle
from . import trust

FORMAT = "torchscript"
STAMP_NAME = "scenes.json"


def read_stamp(path: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"extra/{STAMP_NAME}")), None)
            return json.loads(archive.read(name)) if name else {}
    except (zipfile.BadZipFile, ValueError, OSError):
        return {}


def write(directory: Path, out: Path, stamp: dict, **_) -> None:
    import torch

    from ...models.base import WithFeatures

    module, meta = load_bundle(directory, "cpu")
    module = WithFeatures(module.to(memory_format=torch.contiguous_format), meta.head).eval()
    example = torch.zeros(2, 3, meta.image_size, meta.image_size)
    program = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # "TorchScript is deprecated": see docs
        traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        torch.jit.save(traced, program, _extra_files={STAMP_NAME: json.dumps(stamp)})
    data = program.getvalue()
    # Recorded before the file exists under its name: what is recorded is what was written.
    trust.remember(FORMAT, trust.sha256(data), stamp[trust.WEIGHTS_KEY])
    atomic.write_bytes(out, data)


def read_file_itself(path: Path) -> bytes:
    """The bytes of ``path``, refusing a symbolic link rather than following it (out of the
    bundle, say, to a file that is not the bundle's)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise UsageError(
            f"{path} is a symbolic link (to {os.readlink(path)}); a TorchScript file is a "
            "program and is loaded only from the file itself: export it again with "
            "`scenes export --format torchscript`"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def load(path: Path, device, weights_sha256: str):
    """The program at ``path``, which must be one scenes wrote here from the weights whose
    SHA-256 is ``weights_sha256`` (see the module note); loaded from the bytes checked."""
    import torch

    data = read_file_itself(path)
    if not trust.known(FORMAT, trust.sha256(data), weights_sha256):
        raise UsageError(
            f"{path} was not written by scenes on this machine from the bundle's current "
            "weights; a TorchScript file is a program and is loaded only then: export it "
            "again with `scenes export --format torchscript`"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(io.BytesIO(data), map_location=device).eval()


def trusted(path: Path, weights_sha256: str) -> bool:
    """Written by scenes on this machine from these weights, and unchanged since (a symbolic
    link never is)."""
    if path.is_symlink() or not path.is_file():
        return False
    return trust.known(FORMAT, trust.sha256(path.read_bytes()), weights_sha256)
