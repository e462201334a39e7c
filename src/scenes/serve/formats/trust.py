"""The record of exports made on this machine: what "trusted" means for an exported file.

An entry says: scenes wrote (or, for a data format, checked against PyTorch) a ``fmt`` file
whose bytes have SHA-256 ``file_sha256``, from the weights whose SHA-256 is
``weights_sha256``. Nothing else is trusted: not a path (a file swapped in under the same
name, or a symbolic link to a recorded file, has no entry of its own), not a file recorded
for other weights (an export of an older state of the bundle). The record is
``trusted_exports.json`` in the scenes cache folder (``$SCENES_CACHE``, default
``~/.cache/scenes``), outside every bundle.

That folder may be shared (a team cache, an NFS home, Ray workers). Whoever can write the
record can make scenes load their program, so a record that another user owns or that others
may write (group or world) is refused, naming the file and the fix; scenes writes it 0600.
A record replaced by someone else (who may rename their own file over it in a folder they can
write) is theirs, so that check covers the folder too.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from filelock import FileLock

from ... import atomic
from ...cache_folders import TRUSTED_EXPORTS
from ...config import default_cache_dir
from ...errors import UnsafeFileError

RECORD_VERSION = 2  # 1 (before): path -> SHA-256, which a swap or a symbolic link could fool
Entry = tuple[str, str, str]  # (format, file SHA-256, weights SHA-256)
WEIGHTS_KEY = "scenes.weights_sha256"  # the stamp field that names the weights a file is of


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_path() -> Path:
    return default_cache_dir() / TRUSTED_EXPORTS


def _refuse_unless_private(path: Path, found: os.stat_result) -> None:
    mode = stat.S_IMODE(found.st_mode)
    if found.st_uid != os.getuid():
        why = f"is owned by another user (uid {found.st_uid})"
    elif mode & 0o022:
        why = f"can be written by other users (mode {oct(mode)})"
    else:
        return
    raise UnsafeFileError(
        f"{path} {why}: whoever can write it can make scenes load their program. Remove it "
        f"(scenes writes a new one, mode 0600) or run `chmod 600 {path}` if it is yours, or "
        "set SCENES_CACHE to a folder only you can write."
    )


def _read() -> set[Entry]:
    path = record_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return set()
    with os.fdopen(fd, "rb") as fh:
        _refuse_unless_private(path, os.fstat(fh.fileno()))  # the file read, not its name
        raw = fh.read()
    try:
        found = json.loads(raw)
    except ValueError:
        return set()  # damaged: nothing is trusted, exports are made again
    if not isinstance(found, dict) or found.get("version") != RECORD_VERSION:
        return set()  # an older record (keyed on paths): nothing in it is believed
    return {
        (e["format"], e["file_sha256"], e["weights_sha256"])
        for e in found.get("exports", [])
        if isinstance(e, dict) and {"format", "file_sha256", "weights_sha256"} <= set(e)
    }


def remember(fmt: str, file_sha256: str, weights_sha256: str) -> None:
    """Record a ``fmt`` file with these bytes as made here from these weights."""
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        entries = _read() | {(fmt, file_sha256, weights_sha256)}
        exports = [
            {"format": f, "file_sha256": d, "weights_sha256": w} for f, d, w in sorted(entries)
        ]
        with atomic.replacing_path(path) as tmp:
            tmp.write_text(json.dumps({"version": RECORD_VERSION, "exports": exports}, indent=1))
            os.chmod(tmp, 0o600)


def known(fmt: str, file_sha256: str, weights_sha256: str) -> bool:
    """A ``fmt`` file with these bytes was made (or checked) here from these weights."""
    return (fmt, file_sha256, weights_sha256) in _read()
