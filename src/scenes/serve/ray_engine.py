"""``scenes predict --engine ray``: batch inference on Ray Data, on this machine or a cluster.

The files are listed once, here (``collect_images``: the same walker and rules as the local
engine). Ray Data hands their paths to a pool of actors; each actor loads the bundle once
(``Predictor.load``) and, per batch, reads each file's bytes, skips those an earlier run of the
same command already wrote (same path, same SHA-256), decodes the rest with the bundle's own
preprocessing and answers with ``Predictor.answers``: the local engine's probabilities. An
unreadable file is a row with its error. Rows stream back to this process, which writes them
as they come (``prediction_files``), so a killed job loses at most what was in flight.

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
from ..models.bundle import read_meta, resolve_bundle_dir
from .answers import Prediction, PredictionRow
from .csv_rows import csv_cells, csv_header
from .prediction_files import PredictionSink, bundle_digest
from .predictor import Predictor
from .ray_jobs import RayEngine, map_paths, ray_session


class BatchPredictor:
    """A Ray Data actor: the bundle loaded once; a batch of paths in, their rows out."""

    def __init__(
        self,
        run: str,
        backend: str,
        device: str,
        accept_all: bool,
        top_k: int,
        tta: bool,
        done: dict[str, str],
    ):
        import ray

        self.predictor = Predictor.load(run, backend=backend, device=device, accept_all=accept_all)
        self.top_k, self.tta = top_k, tta
        self.done = ray.get(done) if isinstance(done, ray.ObjectRef) else done
        self.accepting = self.predictor.reference is not None

    def __call__(self, batch: dict) -> dict:
        meta = self.predictor.meta
        rows: list[tuple[PredictionRow, str]] = []
        images, waiting = [], []
        for path in (str(p) for p in batch["path"]):
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                rows.append((PredictionRow(path, Prediction(), f"{type(exc).__name__}: {exc}"), ""))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if self.done.get(path) == digest:
                continue  # written by an earlier run of the same command
            try:
                images.append(meta.preprocess.load(io.BytesIO(data)))
            except Exception as exc:  # an unusable file is a row, never a failed job
                rows.append(
                    (PredictionRow(path, Prediction(), f"{type(exc).__name__}: {exc}"), digest)
                )
                continue
            waiting.append((path, digest))
        if images:
            found = self.predictor.answers(np.stack(images), self.tta)
            for i, (path, digest) in enumerate(waiting):
                rows.append((PredictionRow(path, found.prediction(i, self.top_k)), digest))
        cells = [
            [*csv_cells(row, meta, self.top_k, self.accepting), digest] for row, digest in rows
        ]
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
    bundle = resolve_bundle_dir(run)
    meta = read_meta(bundle)
    top_k = min(top_k, len(meta.class_names))
    accepting = meta.acceptance is not None and not accept_all
    columns = [*csv_header(meta, top_k, accepting), "digest"]
    sink = PredictionSink(out, columns, bundle_digest(bundle))
    with ray_session(engine) as ray:
        arguments = {
            "run": str(bundle),
            "backend": backend,
            "device": device,
            "accept_all": accept_all,
            "top_k": top_k,
            "tta": tta,
            "done": ray.put(sink.done),
        }
        failed = 0
        with console.stage("predicting (ray)", len(files)) as bar:
            for block in map_paths(ray, files, BatchPredictor, arguments, batch_size, engine):
                rows = [json.loads(text) for text in block["row"]]
                failed += sum(1 for r in rows if r[-2])
                sink.write(rows)
                bar.update(len(rows))
        sink.finish()
    skipped = len(files) - sink.written
    return sink.written, skipped, failed
