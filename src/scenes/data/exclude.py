"""``data.exclude``: leave listed training images out of a run (e.g. suspected label errors).

The list is a CSV with a ``path`` column (``scenes data issues`` writes ``label_issues.csv``)
or a text file with one path per line. Paths match the training files after resolving
symlinks; a relative path is looked up under the training folder, then the working directory.

Exclusion happens after the train/validation split: the split is drawn over all readable
images exactly as without a list, then the listed ones are dropped from whichever side they
fell on. Every other image keeps its side, so runs with and without a list share their
validation images except the excluded ones.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from ..csvfile import restore
from ..errors import DataError
from .multilabel import class_totals

MAX_LISTED = 5  # unmatched paths named in the warning


def read_path_list(file: str | Path) -> list[str]:
    """The paths in ``file``: its ``path`` column if it is a CSV with one, else every line
    (blank lines and lines starting with # skipped)."""
    file = Path(file)
    if not file.is_file():
        raise DataError(f"data.exclude: file not found: {file}")
    lines = file.read_text().splitlines()
    rows = list(csv.reader(lines))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if "path" in header:
        column = header.index("path")
        return [
            restore(row[column].strip()) for row in rows[1:] if len(row) > column and row[column]
        ]
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _locate(entry: str, train_dir: Path) -> Path:
    path = Path(entry).expanduser()
    if path.is_absolute():
        return path
    in_data = train_dir / path
    return in_data if in_data.exists() else path.absolute()


def excluded_rows(file: str | Path, train_dir: Path, paths: list[Path]) -> np.ndarray:
    """Indices into ``paths`` of the files listed in ``file``; warns, with the count and a few
    names, about listed paths that are none of ``paths``."""
    listed = {_locate(entry, train_dir).resolve(): entry for entry in read_path_list(file)}
    resolved = [Path(p).resolve() for p in paths]
    rows = np.array([i for i, p in enumerate(resolved) if p in listed], dtype=np.int64)
    present = set(resolved)
    unmatched = [entry for key, entry in listed.items() if key not in present]
    if unmatched:
        shown = ", ".join(unmatched[:MAX_LISTED]) + (", ..." if len(unmatched) > MAX_LISTED else "")
        warnings.warn(
            f"data.exclude: {len(unmatched)} of the {len(listed)} paths listed in {file} are not "
            f"readable training images of {train_dir} and exclude nothing: {shown}",
            stacklevel=2,
        )
    return rows


def apply_exclusion(
    file: str | Path,
    train_dir: Path,
    paths: list[Path],
    labels: np.ndarray,
    class_names: list[str],
    train_idx: np.ndarray,
    val_idx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, excluded) indices: the listed images taken out of both sides."""
    excluded = excluded_rows(file, train_dir, paths)
    keep_train = train_idx[~np.isin(train_idx, excluded)]
    keep_val = val_idx[~np.isin(val_idx, excluded)]
    labels = np.asarray(labels)
    before = class_totals(labels[train_idx], len(class_names))
    after = class_totals(labels[keep_train], len(class_names))
    emptied = [name for name, b, a in zip(class_names, before, after) if b and not a]
    if emptied:
        names = ", ".join(emptied)
        raise DataError(f"data.exclude ({file}) removes every training image of: {names}")
    return keep_train, keep_val, excluded
