"""Decode every image once to uint8 at the training size and keep it on disk.

Later epochs (and later runs on the same files) read a memory-mapped array instead of decoding
JPEGs. Files that cannot be decoded are found here, before training starts, and skipped with
one warning that names them, so a bad file never crashes a run mid-epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL
from filelock import FileLock
from numpy.lib.format import open_memmap
from PIL import UnidentifiedImageError

from ..atomic import replacing_path, write_text
from ..choices import worker_count
from ..console import plural, stage
from .files import content_digest
from .images import PREPROCESS_VERSION, Preprocess

log = logging.getLogger(__name__)

# 3: decoder version in the key, rows written straight to disk; 4: inode and ctime in the key;
# 5: the resize mode and pad colour in the key
CACHE_VERSION = 5


@dataclass
class DecodedImages:
    """Images as an (N, size, size, 3) uint8 array; ``kept`` indexes the input paths;
    ``digests`` name each kept file's bytes (``files.content_digest``: finds exact duplicates)."""

    pixels: np.ndarray
    kept: np.ndarray
    failed: dict[str, str]
    digests: list[str] = field(default_factory=list)


def decoder_version() -> str:
    """What the pixels depend on besides the files: a new Pillow or a change to our decoding
    code gives other pixels, so the cache must not serve the old ones to training while
    inference decodes with the new code."""
    return f"pillow-{PIL.__version__}|preprocess-{PREPROCESS_VERSION}"


def _decode(args: tuple[str, Preprocess]) -> tuple[np.ndarray, str] | str:
    path, preprocess = args
    try:
        data = Path(path).read_bytes()  # read once: hashed here, decoded from memory
        return preprocess.load(io.BytesIO(data)), content_digest(data)
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        return "UnidentifiedImageError: not an image file Pillow can read"
    except Exception as exc:  # any decoder error means: skip this file, report it
        return f"{type(exc).__name__}: {exc}"


def decode_file(path: str | Path, preprocess: Preprocess) -> tuple[np.ndarray, str] | str:
    """(pixels, content digest) of one file, decoded as the cache decodes it, or why it can't."""
    return _decode((str(path), preprocess))


def _key(paths: list[Path], preprocess: Preprocess) -> str:
    """Names the files' current contents without reading them. Size and mtime alone miss a file
    replaced by one of the same size and mtime (``cp -p``, ``rsync -t``): a replaced file has
    a new inode, and one rewritten in place a new ctime, which no tool can set back."""
    header = f"v{CACHE_VERSION}|{decoder_version()}|{preprocess.key()}"
    digest = hashlib.sha256(header.encode())
    for p in paths:
        st = p.stat()
        digest.update(
            f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}\n".encode()
        )
    return digest.hexdigest()[:24]


def warn_failed(failed: dict[str, str]) -> None:
    if failed:
        listing = "\n".join(f"  {path}: {why}" for path, why in failed.items())
        warnings.warn(
            f"skipped {plural(len(failed), 'unreadable image file')}:\n{listing}", stacklevel=2
        )


def decode_images(
    paths: list[Path],
    preprocess: Preprocess | int,
    cache_dir: Path | None,
    interpolation: str = "bilinear",
    workers: int | None = None,
    progress: bool = True,
) -> DecodedImages:
    """Decode ``paths`` as ``preprocess`` says (a bare size: squashed with ``interpolation``),
    cached under ``cache_dir`` when given.

    Several processes may ask at once (one per device in a DDP run): a lock file lets one of
    them decode while the others wait, then all read the same finished cache.
    """
    if isinstance(preprocess, int):
        preprocess = Preprocess(preprocess, interpolation)
    size = preprocess.size
    if cache_dir is None:
        pixels = np.empty((len(paths), size, size, 3), dtype=np.uint8)
        result = _decode_into(pixels, paths, preprocess, workers, progress)
        result.pixels = pixels[: len(result.kept)]
        warn_failed(result.failed)
        return result

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _key(paths, preprocess)
    array_file, meta_file = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not (array_file.is_file() and meta_file.is_file()):
            _build_cache(array_file, meta_file, paths, preprocess, workers, progress)
    meta = json.loads(meta_file.read_text())
    mark_used(meta_file)
    pixels = np.load(array_file, mmap_mode="r", allow_pickle=False)[: meta["count"]]
    result = DecodedImages(
        pixels, np.asarray(meta["kept"], np.int64), meta["failed"], meta["digests"]
    )
    warn_failed(result.failed)
    return result


def _build_cache(
    array_file: Path,
    meta_file: Path,
    paths: list[Path],
    preprocess: Preprocess,
    workers: int | None,
    progress: bool,
) -> None:
    """Decode straight into a memory-mapped ``.npy`` (a large dataset is never held in RAM,
    let alone twice), each file written whole (``scenes.atomic``), so an interrupted build never
    leaves a half-written cache that a later run would trust. The array is put in place before
    the ``.json``, and an entry is read only when both are there: a ``.json`` always describes
    a whole array (a kill between the two leaves an array alone, which is built again)."""
    with replacing_path(array_file) as tmp_array:
        pixels = open_memmap(
            tmp_array,
            mode="w+",
            dtype=np.uint8,
            shape=(len(paths), preprocess.size, preprocess.size, 3),
        )
        result = _decode_into(pixels, paths, preprocess, workers, progress)
        pixels.flush()
        del pixels
    meta = {
        "version": CACHE_VERSION,
        "image_size": preprocess.size,
        "interpolation": preprocess.interpolation,
        "resize": preprocess.resize,
        "folder": common_folder(paths),
        "files": len(paths),
        "count": len(result.kept),
        "kept": result.kept.tolist(),
        "failed": result.failed,
        "digests": result.digests,
    }
    write_text(meta_file, json.dumps(meta))
    log.debug("cached %d decoded images in %s", len(result.kept), array_file)


def common_folder(paths: list[Path]) -> str:
    """The deepest folder holding every file (what ``scenes data cache`` shows an entry as)."""
    if not paths:
        return ""
    return os.path.commonpath([str(Path(p).resolve().parent) for p in paths])


def mark_used(path: Path) -> None:
    """Its modification time says when an entry was last read (``data cache --older-than``)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache only loses that date
        pass


def _decode_into(
    pixels: np.ndarray,
    paths: list[Path],
    preprocess: Preprocess,
    workers: int | None,
    progress: bool,
) -> DecodedImages:
    """Decode ``paths`` into the first rows of ``pixels``, readable files only, in order."""
    workers = workers or worker_count()
    kept, failed, digests = [], {}, []
    jobs = [(str(p), preprocess) for p in paths]
    desc = f"decoding images at {preprocess.size} px"
    with (
        stage(desc, len(paths), show=progress) as bar,
        ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool,
    ):
        for i, out in enumerate(pool.map(_decode, jobs, chunksize=64)):
            if isinstance(out, str):
                failed[str(paths[i])] = out
            else:
                pixels[len(kept)], digest = out
                kept.append(i)
                digests.append(digest)
            bar.update()
    return DecodedImages(pixels, np.asarray(kept, dtype=np.int64), failed, digests)


class _Serial:
    """Stand-in for a process pool when one worker is asked for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items, chunksize=1):
        return map(fn, items)
