"""The whole-dataset jobs on Ray Data: ``evaluate``'s logits and ``data issues``'s features.

Each actor computes what the local engine computes, with the local engine's own functions
(``Predictor.load_images`` and ``Predictor.forward``; ``decode_file`` and ``embed``), so the
answers are the same. An exported format is exported once, before the workers start
(``ray_jobs.export_for_workers``); they only load it. A batch answers every path it was given, with its index into the job's
list and an error for an unreadable file; the caller puts the rows back in its own order.
Every block has the same columns (a failed row holds zeros), as Ray Data needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..console import stage
from ..data.cache import decode_file
from ..models.bundle import read_meta, resolve_bundle_dir
from ..models.features import Backbone, embed
from .ray_jobs import (
    RayEngine,
    export_for_workers,
    fetched,
    load_in_worker,
    map_paths,
    ray_session,
)


class LogitsWorker:
    """A Ray Data actor: the bundle loaded once; paths in, logits (and features) out."""

    def __init__(
        self,
        run: str,
        backend: str,
        device: str,
        accept_all: bool,
        tta: bool,
        export_path: str | None = None,
    ):
        self.model = load_in_worker(run, backend, device, accept_all, export_path)
        self.tta = tta
        size = self.model.meta.image_size
        _, features = self.model.forward(np.zeros((1, size, size, 3), np.uint8))
        self.feature_dim = None if features is None else features.shape[1]

    def __call__(self, batch: dict) -> dict:
        pixels, ok, errors = self.model.load_images([Path(p) for p in batch["path"]])
        rows = len(batch["path"])
        logits = np.zeros((rows, len(self.model.class_names)), np.float32)
        answer = {"index": batch["index"], "error": [errors.get(i, "") for i in range(rows)]}
        found_logits, found_features = self.model.forward(pixels, self.tta) if ok else (None, None)
        if ok:
            logits[ok] = found_logits
        answer["logits"] = logits
        if self.feature_dim is not None:
            features = np.zeros((rows, self.feature_dim), np.float32)
            if ok:
                features[ok] = found_features
            answer["features"] = features
        return answer


def logits_with_ray(
    run: str,
    paths: list[Path],
    backend: str,
    device: str,
    accept_all: bool,
    tta: bool,
    batch_size: int,
    engine: RayEngine,
) -> tuple[np.ndarray, np.ndarray | None, list[int], dict[str, str]]:
    """What ``evaluation.loop.predict_files`` returns, computed by a pool of Ray workers:
    logits of the readable files (and features), their indices in ``paths``, the unreadable."""
    logits: dict[int, np.ndarray] = {}
    features: dict[int, np.ndarray] = {}
    skipped: dict[str, str] = {}
    arguments = {
        "run": str(resolve_bundle_dir(run)),
        "backend": backend,
        "device": device,
        "accept_all": accept_all,
        "tta": tta,
        "export_path": export_for_workers(run, backend),
    }
    with ray_session(engine) as ray, stage("evaluating (ray)", len(paths)) as bar:
        for block in map_paths(ray, paths, LogitsWorker, arguments, batch_size, engine):
            for row, (index, error) in enumerate(zip(block["index"], block["error"])):
                if error:
                    skipped[str(paths[index])] = str(error)
                    continue
                logits[int(index)] = block["logits"][row]
                if "features" in block:
                    features[int(index)] = block["features"][row]
            bar.update(len(block["index"]))
    kept = sorted(logits)
    width = len(read_meta(resolve_bundle_dir(run)).class_names)
    stacked = np.stack([logits[i] for i in kept]) if kept else np.empty((0, width), np.float32)
    found = np.stack([features[i] for i in kept]) if features and kept else None
    return stacked, found, kept, skipped


class FeatureWorker:
    """A Ray Data actor: a backbone held once; paths in, content digests and features out."""

    def __init__(self, backbone: Backbone, device: str):
        self.backbone = fetched(backbone)
        self.device = device
        size = self.backbone.image_size
        probe = np.zeros((1, size, size, 3), np.uint8)
        self.dim = embed(self.backbone, probe, progress=False, device=device).shape[1]

    def __call__(self, batch: dict) -> dict:
        decoded = [decode_file(p, self.backbone.preprocess) for p in batch["path"]]
        ok = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
        features = np.zeros((len(decoded), self.dim), np.float32)
        if ok:
            pixels = np.stack([decoded[i][0] for i in ok])
            found = embed(self.backbone, pixels, None, len(ok), progress=False, device=self.device)
            features[ok] = found
        return {
            "index": batch["index"],
            "digest": [d[1] if not isinstance(d, str) else "" for d in decoded],
            "error": [d if isinstance(d, str) else "" for d in decoded],
            "features": features,
        }


def features_with_ray(
    paths: list[Path], backbone: Backbone, batch_size: int, device: str, engine: RayEngine
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Backbone features of ``paths`` by content digest, and the files that could not be
    decoded: what ``models.features.image_features`` computes locally, on a pool of workers."""
    found: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    with ray_session(engine) as ray, stage("backbone features (ray)", len(paths)) as bar:
        arguments = {"backbone": ray.put(backbone), "device": device}
        for block in map_paths(ray, paths, FeatureWorker, arguments, batch_size, engine):
            for row, (index, digest, error) in enumerate(
                zip(block["index"], block["digest"], block["error"])
            ):
                if error:
                    failed[str(paths[index])] = str(error)
                else:
                    found[str(digest)] = block["features"][row]
            bar.update(len(block["index"]))
    return found, failed
