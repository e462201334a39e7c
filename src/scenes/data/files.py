"""Which files of a folder count, and how a file's content is named.

Every command that lists files (training discovery, ``predict``, ``resize``, ``data check``)
walks folders with ``list_files``, so they agree on what they see: hidden files and folders
(a name starting with "." or macOS's ``__MACOSX``, at any depth) are never data, and image
files are those with one of ``IMAGE_EXTENSIONS``. ``content_digest`` names a file by its bytes,
for exact-duplicate detection and for the caches keyed by content.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_hidden(name: str) -> bool:
    """Thumbnails, editor and OS metadata: ``.DS_Store``, ``.thumbnails/``, ``__MACOSX/``."""
    return name.startswith(".") or name == "__MACOSX"


def has_image_extension(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_files(folder: str | Path, *, images_only: bool = True) -> list[Path]:
    """Files under ``folder``, recursively and sorted, hidden ones left out; only image files
    unless ``images_only=False`` (``data check`` reports the others).

    Like ``Path.rglob``, symlinked files count and symlinked folders are not entered (a link
    back up the tree would loop); unlike it, hidden folders are not even entered.
    """
    found: list[Path] = []

    def visit(directory: str) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                if is_hidden(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    visit(entry.path)
                elif entry.is_file() and (not images_only or has_image_extension(entry.name)):
                    found.append(Path(entry.path))

    visit(str(Path(folder)))
    return sorted(found)


def content_digest(data: bytes) -> str:
    """SHA-1 hex digest of a file's bytes: equal bytes, equal digest.

    It finds copies of one's own files, where nobody forges collisions, so SHA-256's collision
    resistance would buy nothing; and SHA-1 is the key the decoded-image and feature caches
    already hold, so choosing it keeps every existing cache valid. (Speed decides nothing:
    with the CPU's SHA instructions SHA-256 took 1.06x SHA-1's time on the Intel JPEGs.)
    """
    return hashlib.sha1(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (model files are large): for checking a file
    is the one it claims to be, where forged collisions would matter."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
