"""Writing files safely: the one way scenes replaces a file or a folder.

A reader (another command, a Ray worker, the next run after a kill) sees the old file whole or
the new file whole, never half of one. Every replacement goes through here:

1. the new content is written to a temporary file with a unique name (``mkstemp``: no two
   processes or threads share one) in the same folder, so the rename stays on one file system;
2. it is flushed and ``fsync``-ed, so the rename cannot reach the disk before the data;
3. ``os.replace`` puts it in place in one step;
4. the folder is ``fsync``-ed (``durable=True``, the default), so the rename itself survives a
   power cut.

A writer that fails or is killed leaves at most a hidden ``.NAME.*.tmp`` beside the target
(``.``-files are skipped by pyarrow, Ray and every listing scenes makes), never a damaged target.
New files get the permissions ``open`` would give them (the umask's), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_folder(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_sibling(path: Path, *, folder: bool = False) -> Path:
    """A new, uniquely named hidden file (or folder) beside ``path``; it keeps ``path``'s
    suffix, for writers that choose their format by it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", f".tmp{path.suffix}"
    if folder:
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def replacing_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path for a writer that wants a file name (``np.save``, ONNX,
    ``torch.jit.save``); when the block ends without an error, that file replaces ``path``."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def move_into_place(written: str | Path, path: str | Path, *, durable: bool = True) -> None:
    """Put a file a library already wrote whole (in a folder of its own on the same file
    system) at ``path`` in one rename, after its bytes are on disk; no second copy."""
    written, path = Path(written), Path(path)
    _fsync_file(written)
    os.replace(written, path)
    if durable:
        fsync_folder(path.parent)


@contextlib.contextmanager
def replacing(
    path: str | Path, mode: str = "w", *, durable: bool = True, **open_args: Any
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose content replaces ``path`` only when the block ends without
    an error. Text mode defaults to UTF-8 and ``newline=""`` (what the csv module wants)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"replacing() writes a whole file: mode 'w' or 'wb', not {mode!r}")
    if mode == "w":
        open_args.setdefault("encoding", "utf-8")
        open_args.setdefault("newline", "")
    with replacing_path(path, durable=durable) as tmp, open(tmp, mode, **open_args) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    with replacing(path, "wb", durable=durable) as fh:
        fh.write(data)


def write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    with replacing(path, "w", durable=durable, newline=None) as fh:
        fh.write(text)


@contextlib.contextmanager
def replacing_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block ends without an error,
    it becomes ``path`` in one rename (an old ``path`` is moved aside first, then removed), so
    no reader ever finds a mix of two exports' files in it."""
    path = Path(path)
    build = temporary_sibling(path, folder=True)
    os.chmod(build, 0o777 & ~_umask())
    try:
        yield build
        for file in build.rglob("*"):
            if file.is_file():
                _fsync_file(file)
        old = None
        if path.exists():
            old = temporary_sibling(path, folder=True)
            os.replace(path, old / path.name)
        os.replace(build, path)
        fsync_folder(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
