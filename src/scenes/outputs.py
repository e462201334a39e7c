"""Where a command will write, checked before it does any work.

A wrong ``--out`` must be an error in the first second, not after every image was predicted:
each command checks its output path with these before it loads a model or reads a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingPathError, UsageError


def output_file(path: str | Path, option: str = "--out", example: str = "out.csv") -> Path:
    """A file to be (over)written: not a folder, in a folder that exists and is writable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file in it, e.g. {path / example}")
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise MissingPathError(
            f"{option} {path}: the folder {folder} {what}; create it or choose another path"
        )
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path} cannot be written (permissions)")
    return path


def output_dir(path: str | Path, option: str = "--out") -> Path:
    """A folder to write into (made when missing): not an existing file, not under one."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                which = "is a file" if part == path else f"is under {part}, which is a file"
                raise UsageError(f"{option} {path} {which}; name a folder")
            if not os.access(part, os.W_OK):
                raise UsageError(f"{option} {path} cannot be written (permissions of {part})")
            break
    return path
