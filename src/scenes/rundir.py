"""The files of a run directory that several commands read: ``split.csv`` for now.

``split.csv`` lists every training image with its label and the side of the split it was on
(``train``, ``val``; other values, e.g. ``excluded``, are kept as written). Paths are stored
resolved, so the file means the same from any working directory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPLIT_FILE = "split.csv"


@dataclass(frozen=True)
class SplitRow:
    path: Path
    label: str
    split: str


def write_split(run_dir: Path, rows: Iterable[SplitRow]) -> Path:
    path = Path(run_dir) / SPLIT_FILE
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for row in rows:
            writer.writerow([str(Path(row.path).resolve()), row.label, row.split])
    tmp.replace(path)
    return path


def read_split(run_dir: Path) -> list[SplitRow]:
    """The rows of ``RUN_DIR/split.csv``; FileNotFoundError naming what wrote it when absent."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: it is written by `scenes train` at the start of a run"
        )
    with path.open(newline="") as fh:
        return [SplitRow(Path(r["path"]), r["label"], r["split"]) for r in csv.DictReader(fh)]
