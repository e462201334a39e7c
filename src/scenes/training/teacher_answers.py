"""Cached teacher answers kept in the cache folder, so later runs skip the teachers' pass.

``train.teacher_outputs: cached`` answers each training image once (``distill.Distiller``). The
answers depend only on the teachers, the training images and the student's input (size and
normalisation), not on the seed or any training setting, so another seed, a tuner's trials or
a resume of the same data and teachers read them from ``<cache>/teacher-answers/`` instead of
running the teachers again.

The key names the teachers' bundle files by their bytes (a retrained teacher in the same folder
is another key), the decoded-image cache file the pixels come from (itself keyed by the files
and the decoding), the training rows taken from it, the student's mean/std and the torch
version. Stored as ``.npy`` (read with ``allow_pickle=False``: data, never code) and a ``.json``
that says what it holds (``scenes data cache`` lists it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.cache import ANSWERS_DIR, mark_used

ANSWERS_VERSION = 1


def answers_key(teachers: list[Path], pixels, mean: list[float], std: list[float]) -> str | None:
    """The key of ``teachers``' answers on ``pixels`` (rows of the decoded-image cache), or
    None when the pixels are not rows of a cache file (nothing names them across runs)."""
    array, rows = getattr(pixels, "array", None), getattr(pixels, "indices", None)
    filename = getattr(array, "filename", None)
    if filename is None or rows is None:
        return None
    header = f"v{ANSWERS_VERSION}|torch-{torch.__version__}|{Path(filename).name}|{mean}|{std}"
    digest = hashlib.sha256(header.encode())
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    for bundle in teachers:
        for f in sorted(p for p in Path(bundle).rglob("*") if p.is_file()):
            digest.update(f"|{f.relative_to(bundle).as_posix()}|".encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()[:24]


def answers_files(cache_dir: Path, key: str) -> tuple[Path, Path]:
    folder = Path(cache_dir) / ANSWERS_DIR
    return folder / f"{key}.npy", folder / f"{key}.json"


def load_answers(cache_dir: Path, key: str, count: int) -> torch.Tensor | None:
    """The stored answers of ``key`` for ``count`` images, or None (absent or unreadable: then
    they are computed again and the entry rewritten)."""
    array_file, meta_file = answers_files(cache_dir, key)
    try:
        answers = np.load(array_file, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if answers.ndim != 2 or len(answers) != count or answers.dtype != np.float32:
        return None
    mark_used(meta_file)
    return torch.from_numpy(answers)


def save_answers(cache_dir: Path, key: str, answers: torch.Tensor, teachers: list[str]) -> None:
    """Store ``answers`` under ``key``, written whole or not at all (a killed run leaves no
    half file a later run would read). A cache folder that cannot be written only loses the
    saving."""
    array_file, meta_file = answers_files(cache_dir, key)
    try:
        array_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=array_file.parent, prefix=f"{key}.", suffix=".tmp", delete=False
        ) as fh:
            np.save(fh, answers.cpu().numpy().astype(np.float32))
        os.replace(fh.name, array_file)
        meta = {"version": ANSWERS_VERSION, "count": len(answers), "teachers": teachers}
        meta_file.write_text(json.dumps(meta, indent=1))
    except OSError:
        pass
