"""The images an int8 format is calibrated on: a seeded sample of the run's own training split
(read from ``split.csv``), never validation or test images, which measure the result. Decoded
exactly as training and serving decode them (the bundle's ``Preprocess``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...errors import UsageError
from ...models.bundle import bundle_run_dir
from ...models.meta import BundleMeta
from ...rundir import RunDir

log = logging.getLogger(__name__)


def training_paths(directory: Path) -> list[Path]:
    run = RunDir(bundle_run_dir(directory))
    if not run.split_csv.is_file():
        raise UsageError(
            f"int8 calibration reads the run's training images from its split.csv, and "
            f"{run.split_csv} does not exist (a bundle copied without its run): export where "
            "the run is"
        )
    paths = [row.path for row in run.read_split() if row.split == "train"]
    if not paths:
        raise UsageError(f"{run.split_csv} lists no training images to calibrate on")
    return paths


def calibration_images(directory: Path, meta: BundleMeta, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` training images (uint8, N x H x W x 3), drawn with ``seed``; files gone
    or unreadable since training are skipped (with a warning), others drawn in their place."""
    if count < 1:
        raise UsageError(f"--calibration must be at least 1, got {count}")
    paths = training_paths(directory)
    order = np.random.default_rng(seed).permutation(len(paths))
    images, skipped = [], []
    for i in order:
        if len(images) == count:
            break
        try:
            images.append(meta.preprocess.load(paths[i]))
        except Exception as exc:  # a file gone since training is not fatal
            skipped.append(f"{paths[i]} ({type(exc).__name__})")
    if skipped:
        log.warning("calibration skipped %d unreadable file(s): %s", len(skipped), skipped[:3])
    if not images:
        raise UsageError("no training image of the run could be read to calibrate on")
    return np.stack(images)
