"""``scenes predict --engine ray``: batch inference on Ray Data, on this machine or a cluster.

The files are listed once, here (``collect_images``: the same walker and rules as the local
engine). Ray Data hands their paths to a pool of actors; each actor loads the bundle once
(``Predictor.load``) and, per batch, reads each file's bytes, skips those an earlier run of the
same command already wrote (same path, same SHA-256), decodes the rest with the bundle's own
preprocessing and answers with ``Predictor.answers``: the local engine's probabilities. An
unreadable file is a row with its error. Rows stream back to this process, which writes them
as they come (``prediction_files``), so a killed job loses at most what was in flight.

Ray restarts a killed actor and retries its batch (``max_restarts``/``max_task_retries``), so a
lost worker costs time, not rows.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np

from .. import console
from ..errors import UsageError
from ..models.bundle import read_meta, resolve_bundle_dir
from .answers import Prediction, PredictionRow
from .csv_rows import csv_cells, csv_header
from .prediction_files import PredictionSink, bundle_digest
from .predictor import Predictor

log = logging.getLogger(__name__)

# A killed actor is started again this many times, and its batch retried on it.
ACTOR_RESTARTS = 3


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray Data: pip install 'scenes[ray]' (or use --engine local)"
        ) from None
    return ray


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
    import json

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
    address: str | None,
    workers: int | None,
    gpus_per_worker: float,
) -> tuple[int, int, int]:
    """(rows written now, files skipped as already written, unreadable files)."""
    import json

    ray = require_ray()
    bundle = resolve_bundle_dir(run)
    meta = read_meta(bundle)
    top_k = min(top_k, len(meta.class_names))
    accepting = meta.acceptance is not None and not accept_all
    columns = [*csv_header(meta, top_k, accepting), "digest"]
    sink = PredictionSink(out, columns, bundle_digest(bundle))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # our own bar counts the rows as they are written
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = workers or max(
            1,
            cpus
            if gpus_per_worker == 0
            else int(ray.cluster_resources().get("GPU", 0) / gpus_per_worker),
        )
        done = ray.put(sink.done)
        ds = ray.data.from_items([{"path": str(f)} for f in files])
        answered = ds.map_batches(
            BatchPredictor,
            fn_constructor_kwargs={
                "run": str(bundle),
                "backend": backend,
                "device": device,
                "accept_all": accept_all,
                "top_k": top_k,
                "tta": tta,
                "done": done,
            },
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=1 if gpus_per_worker == 0 else 0,
            num_gpus=gpus_per_worker,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=ACTOR_RESTARTS,
        )
        failed = 0
        with console.stage("predicting (ray)", len(files)) as bar:
            for block in answered.iter_batches(batch_size=None, batch_format="numpy"):
                rows = [json.loads(text) for text in block["row"]]
                failed += sum(1 for r in rows if r[-2])
                sink.write(rows)
                bar.update(len(rows))
        sink.finish()
    finally:
        if started_here:
            ray.shutdown()
    skipped = len(files) - sink.written
    return sink.written, skipped, failed
