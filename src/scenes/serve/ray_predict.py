"""``scenes predict --engine ray``: batch inference on Ray Data, on this machine or a cluster.

The files are listed once, here (``collect_images``: the same walker and rules as the local
engine), each file once. An exported format is exported here, once, before any worker starts
(``export_for_workers``). Ray Data hands the paths to a pool of actors; each loads the bundle
once (``load_in_worker``: it never exports) and, per batch, reads each file's bytes, skips
those an earlier run of the same command already wrote without an error (same path, same
SHA-256), decodes the rest with the bundle's own preprocessing and answers with
``Predictor.answers``: the local engine's probabilities. An unreadable file is a row with its
error. Rows stream back to this process, which writes them as they come
(``prediction_files``, which holds the lock on ``--out``), so a killed job loses at most what
was in flight.

The Ray instance and the actor pool are ``ray_jobs``'s, shared with ``evaluate`` and ``data
issues``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .. import console
from ..data.images import Preprocess
from ..models.bundle import answers_digest, read_meta, resolve_bundle_dir
from .answers import Prediction, PredictionRow, label_columns
from .csv_rows import csv_cells, csv_header
from .prediction_files import PredictionSink
from .ray_jobs import (
    RayEngine,
    export_for_workers,
    fetched,
    load_in_worker,
    map_paths,
    ray_session,
)


def decode_batch(batch: dict, preprocess: Preprocess, done: dict[str, str]) -> dict:
    """Paths in; each file's digest, its pixels or its error out. A file an earlier run of the
    same command already answered (same path, same SHA-256, no error) is left out."""
    size = preprocess.size
    paths, digests, errors, pixels = [], [], [], []
    for path in (str(p) for p in batch["path"]):
        digest, image, error = "", None, ""
        try:
            data = Path(path).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if done.get(path) == digest:
                continue
            image = preprocess.load(io.BytesIO(data))
        except Exception as exc:  # an unusable file is a row, never a failed job
            error = f"{type(exc).__name__}: {exc}"
        paths.append(path)
        digests.append(digest)
        errors.append(error)
        pixels.append(np.zeros((size, size, 3), np.uint8) if image is None else image)
    empty = np.empty((0, size, size, 3), np.uint8)
    return {
        "path": paths,
        "digest": digests,
        "error": errors,
        "pixels": np.stack(pixels) if pixels else empty,
    }


class DecodeBatch:
    """Decoding on its own, as Ray tasks on CPUs ahead of GPU workers (``decode_batch``)."""

    def __init__(self, preprocess: Preprocess, done):
        self.preprocess = preprocess
        self.done = fetched(done)

    def __call__(self, batch: dict) -> dict:
        return decode_batch(batch, self.preprocess, self.done)


class BatchPredictor:
    """A Ray Data actor: the bundle loaded once; a batch of paths (or, with ``decoded``, of
    ``decode_batch``'s pixels) in, their rows out."""

    def __init__(
        self,
        run: str,
        backend: str,
        device: str,
        accept_all: bool,
        top_k: int,
        tta: bool,
        done: dict[str, str],
        decoded: bool = False,
        export_path: str | None = None,
    ):
        self.predictor = load_in_worker(run, backend, device, accept_all, export_path)
        self.top_k, self.tta, self.decoded = top_k, tta, decoded
        self.done = fetched(done)
        self.accepting = self.predictor.reference is not None

    def __call__(self, batch: dict) -> dict:
        meta = self.predictor.meta
        if not self.decoded:
            batch = decode_batch(batch, meta.preprocess, self.done)
        ok = [i for i, error in enumerate(batch["error"]) if not error]
        found = self.predictor.answers(batch["pixels"][ok], self.tta) if ok else None
        row_of = {i: row for row, i in enumerate(ok)}
        cells = []
        for i, (path, digest, error) in enumerate(
            zip(batch["path"], batch["digest"], batch["error"])
        ):
            if i in row_of:
                row = PredictionRow(str(path), found.prediction(row_of[i], self.top_k))
            else:
                row = PredictionRow(str(path), Prediction(), str(error))
            cells.append([*csv_cells(row, meta, self.top_k, self.accepting), str(digest)])
        return {"row": [json_row(c) for c in cells]}


def json_row(cells: list) -> str:
    """One row as JSON text: Ray's blocks then hold one string column, whatever the types."""
    return json.dumps(cells)


def predict_with_ray(
    run: str,
    files: list[Path],
    out: str,
    top_k: int,
    backend: str,
    batch_size: int,
    device: str,
    tta: bool,
    accept_all: bool,
    engine: RayEngine,
) -> tuple[int, int, int]:
    """(rows written now, files skipped as already written, unreadable files)."""
    files = list({str(f): f for f in files}.values())  # a file named twice is one row
    bundle = resolve_bundle_dir(run)
    meta = read_meta(bundle)
    top_k = label_columns(top_k, meta.class_names)
    accepting = meta.acceptance is not None and not accept_all
    columns = [*csv_header(meta, top_k, accepting), "digest"]
    with PredictionSink(out, columns, answers_digest(bundle)) as sink:
        arguments = {
            "run": str(bundle),
            "backend": backend,
            "device": device,
            "accept_all": accept_all,
            "top_k": top_k,
            "tta": tta,
            "done": sink.done,
            "decoded": engine.decode_apart,
            "export_path": export_for_workers(bundle, backend),
        }
        failed = _answer_into(sink, files, arguments, batch_size, engine)
        sink.finish()
    return sink.written, len(files) - sink.written, failed


def _answer_into(
    sink: PredictionSink, files: list[Path], arguments: dict, batch_size: int, engine: RayEngine
) -> int:
    """``files``' rows from a pool of ``BatchPredictor``s into ``sink``; the unreadable count."""
    failed = 0
    with ray_session(engine) as ray:
        arguments = {**arguments, "done": ray.put(arguments["done"])}
        decode = None
        if engine.decode_apart:
            preprocess = read_meta(Path(arguments["run"])).preprocess
            decode = (DecodeBatch, {"preprocess": preprocess, "done": arguments["done"]})
        with console.stage("predicting (ray)", len(files)) as bar:
            blocks = map_paths(ray, files, BatchPredictor, arguments, batch_size, engine, decode)
            for block in blocks:
                rows = [json.loads(text) for text in block["row"]]
                failed += sum(1 for r in rows if r[-2])
                sink.write(rows)
                bar.update(len(rows))
    return failed
