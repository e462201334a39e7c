"""Leakage: evaluated photos that are (near-)copies of the run's own training images.

A test score on photos the model trained on, re-encoded or slightly cropped, is not a test
score. Each evaluated photo is compared with the training rows of the run's ``split.csv``
by the test ``scenes data check --near`` uses (``models.near``: same features, same
threshold), and the accuracy is given again without the photos that have a training copy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import MissingPathError, WeightsUnavailableError
from ..models.near import HASH_WEIGHT, NEAR_DISTANCE, embed_files, near_backbone, nearest_reference
from ..rundir import RunDir


def training_paths(run_dir: Path) -> list[Path]:
    return [row.path for row in RunDir(run_dir).read_split() if row.split == "train"]


def leaked_files(evaluated: list[Path], training: list[Path], cache_dir: Path | None) -> list[dict]:
    """{path, training_path, distance} of each evaluated photo that the near-duplicate test
    pairs with a training image, nearest first (distance: ``models.near``'s near distance)."""
    backbone = near_backbone()
    queries = embed_files(evaluated, backbone, cache_dir, progress=False)
    references = embed_files(training, backbone, cache_dir, progress=False)
    found = [
        {
            "path": str(evaluated[queries.kept[row]]),
            "training_path": str(training[references.kept[ref]]),
            "distance": round(distance, 4),
        }
        for row, ref, distance in nearest_reference(queries, references)
    ]
    return sorted(found, key=lambda f: f["distance"])


def leakage_summary(run_dir: Path, predictions: list[dict], cache_dir: Path | None) -> dict:
    """What metrics.json says about leakage; the count is None (with a warning saying why)
    when the check could not run."""
    try:
        training = training_paths(run_dir)
        found = leaked_files([Path(p["path"]) for p in predictions], training, cache_dir)
    except (MissingPathError, WeightsUnavailableError) as exc:
        warnings.warn(f"near-duplicates of training images not checked: {exc}", stacklevel=2)
        return {"near_duplicates_of_training": None}
    leaked = {f["path"] for f in found}
    rest = [p for p in predictions if p["path"] not in leaked]
    accuracy = float(np.mean([p["predicted"] == p["true"] for p in rest])) if rest else None
    return {
        "near_duplicates_of_training": len(found),
        "accuracy_without_near_duplicates": accuracy,
        "near_duplicate_files": found,
        "near_duplicate_test": {"near_distance": NEAR_DISTANCE, "hash_weight": HASH_WEIGHT},
    }


def leakage_lines(summary: dict) -> list[str]:
    """The console's warning (nothing when no photo leaked or the check did not run)."""
    count = summary.get("near_duplicates_of_training")
    if not count:
        return []
    accuracy = summary.get("accuracy_without_near_duplicates")
    without = f"{accuracy:.4f}" if accuracy is not None else "undefined (no other image)"
    lines = [
        "",
        f"WARNING: near-duplicates of the run's training images among the evaluated images: "
        f"{count}. A score on them is not a test score; top-1 accuracy without them: {without}",
    ]
    for f in summary["near_duplicate_files"][:10]:
        lines.append(f"  {f['path']}  ~  {f['training_path']} (distance {f['distance']})")
    if count > 10:
        lines.append(f"  ... {count - 10} more in metrics.json")
    return lines
