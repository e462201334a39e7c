"""What ``scenes evaluate`` reads and where it writes: the test folder of a dataset (never its
training folder), the run's own split from ``split.csv``, a multi-label labels CSV; and the
``RUN/eval/<name>`` folder of each source."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from ..choices import SPLITS
from ..data.discover import find_layout, list_labelled_files
from ..data.multilabel import read_labels_csv
from ..errors import DataError, UsageError
from ..rundir import SPLIT_FILE, RunDir
from ..serve.predictor import Predictor
from .outputs import METRICS_JSON


def evaluation_folder(data: str | Path) -> Path:
    """The folder of ``<class>/`` folders to evaluate, never a training folder.

    A dataset root with ``test/`` or ``seg_test/seg_test/`` means that test folder; a root
    with only a training folder is refused (use ``--split val`` for its held-out part).
    """
    layout = find_layout(data)
    if layout.name == "bare":
        return layout.root
    if layout.test_dir is None:
        raise DataError(
            f"{data} holds a training folder ({layout.train_dir}) and no test folder; "
            "evaluating on training images would overstate accuracy: pass a test folder "
            "with --data, or use --split val for the run's validation split"
        )
    return layout.test_dir


def split_files(
    run_dir: Path, split: str, class_names: list[str], multilabel: bool = False
) -> tuple[list[Path], np.ndarray]:
    """Paths and labels of one split listed in RUN/split.csv, labels matched by class name
    (multi-label: the names separated by spaces, as a multi-hot row)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels = [], []
    for row in RunDir(run_dir).read_split():
        if row.split != split:
            continue
        names = row.label.split() if multilabel else [row.label]
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(
                f"{run_dir / SPLIT_FILE}: label {unknown[0]!r} is not a class of the model "
                f"({', '.join(class_names)})"
            )
        paths.append(row.path)
        if multilabel:
            row_labels = np.zeros(len(class_names), np.uint8)
            row_labels[[index[n] for n in names]] = 1
            labels.append(row_labels)
        else:
            labels.append(index[row.label])
    if not paths:
        raise DataError(f"{run_dir / SPLIT_FILE} lists no {split!r} images")
    return paths, np.asarray(labels)


def evaluation_files(
    model: Predictor,
    run_dir: Path,
    data: str | Path | None,
    labels_csv: str | Path | None,
    split: str | None,
) -> tuple[list[Path], np.ndarray, str, str]:
    """(paths, labels, source, name) of what to evaluate: the run's split, a labels CSV
    (multi-label), or a folder of class folders (single-label)."""
    names = model.class_names
    multilabel = model.meta.task == "multilabel"
    if split is not None:
        paths, labels = split_files(run_dir, split, names, multilabel)
        return paths, labels, f"{RunDir(run_dir).split_csv.resolve()}:{split}", split
    if multilabel != (labels_csv is not None):
        raise UsageError(
            "a multi-label model is evaluated on a labels CSV: pass --labels FILE (path,labels)"
            if multilabel
            else "--labels is for a multi-label model; this one is single-label: pass --data DIR"
        )
    if multilabel:
        files = read_labels_csv(labels_csv, names)  # the model's classes, in its order
        csv_path = Path(labels_csv).resolve()
        return files.paths, files.labels, str(csv_path), csv_path.parent.name
    folder = evaluation_folder(data)
    files = list_labelled_files(folder, names)
    return files.paths, np.asarray(files.labels), str(folder.resolve()), folder.resolve().name


def default_eval_dir(run_dir: Path, name: str, source: str, tta: bool) -> Path:
    """``RUN/eval/<name>`` (``-tta`` with TTA): the folder of an earlier evaluation of the same
    source is reused; one of another source with the same name (two folders called ``test``)
    is never overwritten, the new one is numbered instead."""
    base = f"{name}-tta" if tta else name
    for n in itertools.count(1):
        candidate = RunDir(run_dir).eval / (base if n == 1 else f"{base}-{n}")
        metrics = candidate / METRICS_JSON
        if not candidate.exists():
            return candidate
        if metrics.is_file() and _source_of(metrics) == source:
            return candidate
    raise AssertionError("unreachable")


def _source_of(metrics_json: Path) -> str | None:
    try:
        return json.loads(metrics_json.read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None
