"""Cached teacher outputs kept in the cache folder, so later runs skip the teachers' pass.

``train.teacher_outputs: cached`` answers each training image once (``distill.Distiller``). The
answers depend only on the teachers, the training images and the student's input (size and
normalisation), not on the seed or any training setting, so another seed, a tuner's trials or
a resume of the same data and teachers read them from ``<cache>/teacher-outputs/`` instead of
running the teachers again.

The key names each teacher by its weights digest (the SHA-256 of ``model.safetensors``, as
export stamps do: a retrained teacher in the same folder is another key) and the fields of its
``model.json`` that change its answers (network, classes, input size, normalisation,
temperature; not the acceptance of unknown photos or the training record), so an export or
``--backend onnx`` writing into the teacher's ``model/`` keeps the key. It also names the
decoded-image cache file the pixels come from (itself keyed by the files and the decoding),
the training rows taken from it, the student's mean/std and the torch version. Stored as
``.npy`` (read with ``allow_pickle=False``: data, never code) and a ``.json`` that says what it
holds (``scenes data cache`` lists it), each written whole (``scenes.atomic``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..atomic import replacing, write_text
from ..cache_folders import TEACHER_OUTPUTS
from ..data.cache import mark_used
from ..models.bundle import read_meta, weights_digest

ANSWERS_VERSION = 2  # 2: teachers named by weights and answer-shaping model.json fields

# model.json fields that do not change a teacher's logits: left out of the key
NOT_ANSWERING = {"acceptance", "thresholds", "training", "format"}


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
        digest.update(f"|{teacher_identity(bundle)}".encode())
    return digest.hexdigest()[:24]


def teacher_identity(bundle: Path) -> str:
    """A teacher as its answers see it: its weights digest and the ``model.json`` fields that
    shape its logits (an ensemble's members' too), never the export files beside them."""
    meta = read_meta(bundle)
    members = {"members": {"__all__": NOT_ANSWERING}} if meta.members else {}
    described = meta.model_dump(
        mode="json", exclude={**dict.fromkeys(NOT_ANSWERING, True), **members}
    )
    return f"{weights_digest(bundle)}|{json.dumps(described, sort_keys=True)}"


def answers_files(cache_dir: Path, key: str) -> tuple[Path, Path]:
    folder = Path(cache_dir) / TEACHER_OUTPUTS
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
        with replacing(array_file, "wb") as fh:
            np.save(fh, answers.cpu().numpy().astype(np.float32))
        meta = {"version": ANSWERS_VERSION, "count": len(answers), "teachers": teachers}
        write_text(meta_file, json.dumps(meta, indent=1))
    except OSError:
        pass
