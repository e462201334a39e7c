"""The run directory, one fact: where each file of a run lives, and the two files several
commands read and write, ``split.csv`` and ``metrics.csv``.

``split.csv`` lists every training image with its label, the side of the split it was on
(``train``, ``val``; other values, e.g. ``excluded``, are kept as written), and its size and
modification time (``size``, ``mtime_ns``) when the run started, so a resume can tell that a
file changed since (older files without those columns are still read), and ``given_label``, the
folder's label when ``data.relabel`` trained on another. Paths are stored
resolved, so the file means the same from any working directory. ``metrics.csv`` holds one
row per epoch (``METRICS_COLUMNS``); the best epoch is the one ``checkpoints/best.ckpt``
records, chosen during training by ``train.monitor``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .csvfile import SafeWriter, restore
from .errors import MissingPathError, RunDirError, UnsafeFileError

BUNDLE_DIR = "model"  # a run's deployable bundle: RUN/model/
SPLIT_FILE = "split.csv"
METRICS_FILE = "metrics.csv"
# Figures training writes into RUN/figures/, in the order a report tells the story.
CLASS_DISTRIBUTION = "class_distribution.png"
TRAINING_SAMPLES = "training_samples.png"
AUGMENTATIONS = "augmentations.png"
TRAINING_CURVES = "training_curves.png"
FIGURE_TITLES = {
    TRAINING_CURVES: "Training curves",
    CLASS_DISTRIBUTION: "Class distribution",
    TRAINING_SAMPLES: "Training images",
    AUGMENTATIONS: "Augmentations",
}
# One row per epoch; the score columns by task: top-1 accuracy and macro F1 (single-label),
# mean average precision and macro F1 at 0.5 (multi-label).
SCORES = {"multiclass": ("acc", "f1"), "multilabel": ("map", "f1")}


def metrics_columns(task: str = "multiclass") -> list[str]:
    scores = SCORES[task]
    return [
        "epoch",
        "time_s",
        "lr",
        "train_loss",
        *(f"train_{s}" for s in scores),
        "val_loss",
        *(f"val_{s}" for s in scores),
    ]


METRICS_COLUMNS = metrics_columns()


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of a metrics.csv column (``train.monitor``, a tune objective)
    is the better one: a loss is; accuracy, F1 and mAP are not."""
    return metric.endswith("_loss")


def monitor_mode(metric: str) -> str:
    """Lightning's and PyTorch's word for the direction: ``min`` or ``max``."""
    return "min" if lower_is_better(metric) else "max"


@dataclass(frozen=True)
class SplitRow:
    path: Path
    label: str
    split: str
    # The file as it was when the run started (None: gone then, or an older split.csv).
    size: int | None = None
    mtime_ns: int | None = None
    given_label: str | None = None  # the folder's label when data.relabel changed it


def _stat(path: Path) -> tuple[int | str, int | str]:
    """(size, mtime_ns) of a file; empty cells for one that is gone (an excluded file may be)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return "", ""
    return stat.st_size, stat.st_mtime_ns


def _int_or_none(cell: str | None) -> int | None:
    return int(cell) if cell else None


class RunDir:
    """A run directory (``runs/<name>/``), as ``scenes train`` lays it out."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    split_csv = property(lambda self: self.path / SPLIT_FILE)
    metrics_csv = property(lambda self: self.path / METRICS_FILE)
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_checkpoint = property(lambda self: self.checkpoints / "best.ckpt")
    last_checkpoint = property(lambda self: self.checkpoints / "last.ckpt")
    bundle = property(lambda self: self.path / BUNDLE_DIR)
    figures = property(lambda self: self.path / "figures")
    eval = property(lambda self: self.path / "eval")
    explain = property(lambda self: self.path / "explain")
    label_issues = property(lambda self: self.path / "label_issues")
    report = property(lambda self: self.path / "report.md")
    trackers = property(lambda self: self.path / "trackers.json")  # mlflow/wandb run ids

    def holds_a_run(self) -> bool:
        return self.metrics_csv.exists() or self.checkpoints.exists()

    # -- split.csv ----------------------------------------------------------------------------
    def write_split(self, rows: Iterable[SplitRow]) -> Path:
        """split.csv, each file's size and modification time read from the disk now."""
        with atomic.replacing(self.split_csv, "w") as fh:
            writer = SafeWriter(fh)
            writer.writerow(["path", "label", "split", "size", "mtime_ns", "given_label"])
            for row in rows:
                path = Path(row.path).resolve()
                given = row.given_label or row.label
                writer.writerow([str(path), row.label, row.split, *_stat(path), given])
        return self.split_csv

    def read_split(self) -> list[SplitRow]:
        """The rows of split.csv; FileNotFoundError naming what writes it when absent."""
        if not self.split_csv.is_file():
            raise MissingPathError(
                f"{self.split_csv} not found: it is written by `scenes train` at the start of a run"
            )
        with self.split_csv.open(newline="") as fh:
            return [
                SplitRow(
                    Path(restore(r["path"])),
                    restore(r["label"]),
                    r["split"],
                    _int_or_none(r.get("size")),
                    _int_or_none(r.get("mtime_ns")),
                    restore(r["given_label"]) if r.get("given_label") else None,
                )
                for r in csv.DictReader(fh)
            ]

    # -- metrics.csv --------------------------------------------------------------------------
    def append_metrics(self, row: dict[str, float]) -> None:
        """``row``'s keys, in order, are the columns (``metrics_columns`` of the task)."""
        new = not self.metrics_csv.exists()
        with self.metrics_csv.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read_metrics(self) -> list[dict[str, float]]:
        """One dict per epoch, values as floats (an empty cell is NaN)."""
        if not self.metrics_csv.is_file():
            raise MissingPathError(
                f"{self.metrics_csv} not found: it is written by `scenes train`, one row per epoch"
            )
        with self.metrics_csv.open(newline="") as fh:
            return [
                {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(fh)
            ]

    def metrics_by_column(self) -> dict[str, list[float]]:
        """metrics.csv as columns (what figures plot)."""
        rows = self.read_metrics()
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}

    def metrics_of_epoch(self, epoch: int) -> dict[str, float]:
        return next((r for r in self.read_metrics() if int(r["epoch"]) == epoch), {})

    def trim_metrics(self, last_epoch: int) -> None:
        """Drop rows a crashed run wrote after its last checkpoint; the resumed run redoes them.
        The kept rows replace the file in one step: a kill here leaves the old file whole."""
        if not self.metrics_csv.exists():
            return
        with self.metrics_csv.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows, columns = list(reader), reader.fieldnames or METRICS_COLUMNS
        with atomic.replacing(self.metrics_csv, "w") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["epoch"]) <= last_epoch)

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir:
        """The run a checkpoint belongs to: ``RUN/checkpoints/<name>.ckpt`` -> ``RUN``."""
        return cls(Path(checkpoint).resolve().parent.parent)

    @property
    def best_epoch(self) -> int:
        """The epoch (from 1) of ``checkpoints/best.ckpt``: what the bundle holds."""
        if not self.best_checkpoint.is_file():
            raise MissingPathError(
                f"{self.best_checkpoint} not found: the best epoch is the one it records"
            )
        # mmap: only the epoch counter is read, not the weights and optimizer state
        return epoch_of(read_checkpoint(self.best_checkpoint, mmap=True))


def epoch_of(checkpoint: dict) -> int:
    """The epoch (from 1, as metrics.csv counts) whose end a checkpoint was written at
    (Lightning counts from 0)."""
    return int(checkpoint["epoch"]) + 1


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """A training checkpoint's contents, read as data only.

    A checkpoint is a pickle, and a pickle can run code when it is loaded: a run folder
    someone shared could hold one that does. So tensors and plain containers are all that is
    read (``weights_only=True``, which is all a scenes checkpoint holds); anything else is
    refused with ``UnsafeFileError`` before it can run.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"{path} holds more than tensors and plain data (a pickle that could run code "
            "when loaded), so it was not loaded; a checkpoint written by scenes never does. "
            f"Use a run folder you trust. ({str(exc).splitlines()[0][:160]})"
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise RunDirError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    if not isinstance(checkpoint, dict) or "epoch" not in checkpoint:
        raise RunDirError(f"{path} is not a training checkpoint (no epoch counter in it)")
    return checkpoint
