"""TorchScript: the bundle's network traced (with its features output), frozen, saved.

A TorchScript file is a program, not data: loading one runs the code inside it. So the
``torchscript`` backend loads only a file scenes itself wrote on this machine: each export
records the file's SHA-256 in ``trusted_exports.json`` of the scenes cache folder
(``$SCENES_CACHE``, default ``~/.cache/scenes``), outside the bundle. A file that arrived with a
bundle from elsewhere, or was changed since, is exported again from the weights instead.
The stamp is an extra file inside the archive (``extra/scenes.json``), read with ``zipfile``
without loading the program.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from filelock import FileLock

from ...config import default_cache_dir
from ...data.files import file_sha256
from ...models.bundle import load_bundle

STAMP_NAME = "scenes.json"
TRUST_FILE = "trusted_exports.json"


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
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)  # "TorchScript is deprecated": see docs
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
            torch.jit.save(traced, str(tmp), _extra_files={STAMP_NAME: json.dumps(stamp)})
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    remember(out)


def _trust_file() -> Path:
    return default_cache_dir() / TRUST_FILE


def _read_trust() -> dict[str, str]:
    try:
        found = json.loads(_trust_file().read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def remember(path: Path) -> None:
    """Record ``path``'s content as written by scenes on this machine."""
    record = _trust_file()
    record.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(record) + ".lock"):
        trusted = _read_trust()
        trusted[str(path.resolve())] = file_sha256(path)
        tmp = record.with_name(f".{record.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(trusted, indent=1))
        tmp.replace(record)


def trusted(path: Path) -> bool:
    """Written by scenes on this machine, and unchanged since."""
    recorded = _read_trust().get(str(path.resolve()))
    return recorded is not None and recorded == file_sha256(path)


def load(path: Path, device):
    """The program at ``path``, which must be one scenes wrote here (see the module note)."""
    import torch

    from ...errors import UsageError

    if not trusted(path):
        raise UsageError(
            f"{path} was not written by scenes on this machine; a TorchScript file is a program "
            "and is loaded only then: export it again with `scenes export --format torchscript`"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location=device).eval()
