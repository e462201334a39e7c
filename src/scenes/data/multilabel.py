"""Several labels per image: a CSV of ``path,labels`` (``data.labels``) instead of class
folders.

``path`` is relative to the CSV's folder (absolute paths are kept); ``labels`` holds class
names separated by spaces, an empty cell meaning none of the classes. The classes are the
sorted names found (or ``data.classes``). Labels are a multi-hot (images, classes) array
wherever single-label data has a vector of class indices.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..csvfile import restore
from ..errors import DataError
from .discover import LabelledFiles
from .files import has_image_extension
from .split import keep_copies_together

MAX_NAMED = 5  # problems named in a message before "and N more"


def read_labels_csv(csv_path: str | Path, classes: list[str] | None = None) -> LabelledFiles:
    """The images and multi-hot labels a labels CSV lists; every problem named."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"data.labels: file not found: {csv_path}")
    rows = _read_rows(csv_path)
    folder = csv_path.parent
    paths = [Path(p) if Path(p).is_absolute() else folder / p for p, _ in rows]
    _check_paths(csv_path, paths)
    found = sorted({name for _, names in rows for name in names})
    class_names = list(classes) if classes else found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DataError(
            f"{csv_path} uses classes that data.classes does not list: {_named(unknown)}"
        )
    if len(class_names) < 2:
        raise DataError(f"{csv_path} names {len(class_names)} class(es): at least two are needed")
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.zeros((len(rows), len(class_names)), dtype=np.uint8)
    for r, (_, names) in enumerate(rows):
        labels[r, [index[n] for n in names]] = 1
    return LabelledFiles(paths, labels, class_names)


def _read_rows(csv_path: Path) -> list[tuple[str, list[str]]]:
    """(path, class names) per row of a CSV as people write it: a UTF-8 BOM (Excel), spaces
    around commas and cells, headers in any case and order, blank lines skipped."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            table = [row for row in csv.reader(fh, skipinitialspace=True) if any(row)]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{csv_path} is not UTF-8 text ({exc.reason}): save it as UTF-8 CSV"
        ) from exc
    header = [name.strip().lower() for name in table[0]] if table else []
    twice = sorted({name for name in header if header.count(name) > 1} & {"path", "labels"})
    if "path" not in header or "labels" not in header or twice:
        found = ", ".join(name.strip() for name in table[0]) if table else "no header"
        raise DataError(
            f"{csv_path} must have the columns path and labels once each (class names separated "
            f"by spaces), found: {found}" + (f" (twice: {', '.join(twice)})" if twice else "")
        )
    at_path, at_labels = header.index("path"), header.index("labels")

    def cell(row: list[str], i: int) -> str:
        return restore(row[i].strip()) if i < len(row) else ""

    return [(cell(row, at_path), cell(row, at_labels).split()) for row in table[1:]]


def _check_paths(csv_path: Path, paths: list[Path]) -> None:
    if not paths:
        raise DataError(f"{csv_path} lists no images")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{csv_path} lists {len(missing)} missing file(s): {_named(missing)}")
    others = [str(p) for p in paths if not has_image_extension(p)]
    if others:
        raise DataError(f"{csv_path} lists files that are not images: {_named(others)}")
    resolved = [p.resolve() for p in paths]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise DataError(f"{csv_path} lists these files twice: {_named(twice)}")


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def label_text(label, class_names: list[str]) -> str:
    """One image's label as split.csv and the labels CSV write it: the class name, or for a
    multi-hot row the class names separated by spaces."""
    if np.ndim(label) == 0:
        return class_names[int(label)]
    return " ".join(class_names[j] for j in np.flatnonzero(label))


def class_totals(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Images per class: class indices counted, or multi-hot rows summed."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.sum(axis=0).astype(np.int64)
    return np.bincount(labels, minlength=num_classes)


def split_multilabel(
    labels: np.ndarray, val_fraction: float, seed: int, groups: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices, each label in proportion as well as iterative stratification
    (Sechidis et al. 2011; the ``iterative-stratification`` package) can; same seed, same
    split. ``groups`` (content digests) keep exact copies on one side, as the single-label
    split does."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    labels = np.asarray(labels)
    if len(labels) < 4:
        raise DataError(f"{len(labels)} images: too few to hold some out for validation")
    n_val = max(1, round(len(labels) * val_fraction))
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels))
    return keep_copies_together(train_idx, val_idx, groups)
