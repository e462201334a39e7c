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
from tqdm.auto import tqdm

from .images import load_image

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: content digests stored beside the pixels


@dataclass
class DecodedImages:
    """Images as an (N, size, size, 3) uint8 array; ``kept`` indexes the input paths;
    ``digests`` are the SHA-1 of each kept file's bytes (finds exact duplicates)."""

    pixels: np.ndarray
    kept: np.ndarray
    failed: dict[str, str]
    digests: list[str] = field(default_factory=list)


def _decode(args: tuple[str, int, str]) -> tuple[np.ndarray, str] | str:
    path, size, interpolation = args
    try:
        data = Path(path).read_bytes()  # read once: hashed here, decoded from memory
        return load_image(io.BytesIO(data), size, interpolation), hashlib.sha1(data).hexdigest()
    except Exception as exc:  # any decoder error means: skip this file, report it
        return f"{type(exc).__name__}: {exc}"


def _key(paths: list[Path], size: int, interpolation: str) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{interpolation}".encode())
    for p in paths:
        st = p.stat()
        digest.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def warn_failed(failed: dict[str, str]) -> None:
    if failed:
        listing = "\n".join(f"  {path}: {why}" for path, why in failed.items())
        warnings.warn(f"skipped {len(failed)} unreadable image file(s):\n{listing}", stacklevel=2)


def decode_images(
    paths: list[Path],
    size: int,
    cache_dir: Path | None,
    interpolation: str = "bilinear",
    workers: int | None = None,
    progress: bool = True,
) -> DecodedImages:
    """Decode ``paths`` at ``size`` (cached under ``cache_dir`` when given)."""
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        key = _key(paths, size, interpolation)
        array_file = cache_dir / f"{key}.npy"
        meta_file = cache_dir / f"{key}.json"
        if array_file.is_file() and meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            pixels = np.load(array_file, mmap_mode="r")
            kept = np.asarray(meta["kept"], dtype=np.int64)
            result = DecodedImages(pixels, kept, meta["failed"], meta["digests"])
            warn_failed(result.failed)
            return result

    workers = workers or min(8, os.cpu_count() or 1)
    pixels = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    kept, failed, digests = [], {}, []
    jobs = [(str(p), size, interpolation) for p in paths]
    bar = tqdm(
        total=len(paths), desc=f"Decoding images at {size}px", unit="img", disable=not progress
    )
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        for i, out in enumerate(pool.map(_decode, jobs, chunksize=64)):
            if isinstance(out, str):
                failed[str(paths[i])] = out
            else:
                pixels[len(kept)], digest = out
                kept.append(i)
                digests.append(digest)
            bar.update()
    bar.close()
    pixels = pixels[: len(kept)]
    result = DecodedImages(pixels, np.asarray(kept, dtype=np.int64), failed, digests)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Write to temporary names then rename, so an interrupted build never leaves a
        # half-written cache that a later run would trust.
        tmp = array_file.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, pixels)
        os.replace(tmp, array_file)
        meta_tmp = meta_file.with_suffix(f".tmp{os.getpid()}")
        meta_tmp.write_text(json.dumps({"kept": kept, "failed": failed, "digests": digests}))
        os.replace(meta_tmp, meta_file)
        log.info("cached %d decoded images in %s", len(kept), array_file)
    warn_failed(failed)
    return result


class _Serial:
    """Stand-in for a process pool when one worker is asked for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items, chunksize=1):
        return map(fn, items)
