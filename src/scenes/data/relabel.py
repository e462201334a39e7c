"""``data.relabel``: apply a decisions CSV (``scenes review``'s ``RUN/review/decisions.csv``).

The file needs the columns ``path`` and ``decision``: a class name (several separated by
``;`` for a multi-label run), ``keep`` or ``exclude``. The last row of a path wins, as the
review appends one row per click. With a ``sha256`` column, a decision whose file's bytes have
changed since (another SHA-256) is named in a warning and not applied: it was made about
another picture. Paths are found as ``data.exclude``'s are.

Like ``data.exclude`` it is applied after the train/validation split, so a run with decisions
validates on the same images as one without, less the excluded ones; validation labels are
corrected too. ``split.csv`` records the label used and the original one.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..csvfile import restore
from ..errors import DataError
from .exclude import MAX_LISTED, _locate
from .multilabel import class_totals

KEEP, EXCLUDE = "keep", "exclude"


@dataclass(frozen=True)
class Decision:
    entry: str  # the path as the file gives it
    decision: str
    sha256: str | None  # of the file's bytes when decided (None: not recorded)


def read_decisions(file: str | Path) -> list[Decision]:
    """The last decision of each path in ``file``."""
    file = Path(file)
    if not file.is_file():
        raise DataError(f"data.relabel: file not found: {file}")
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "decision"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"data.relabel: {file} lacks the column(s) {', '.join(sorted(missing))}; it "
                "needs path and decision (a class name, keep or exclude)"
            )
        last: dict[str, Decision] = {}
        for row in reader:
            entry = restore((row["path"] or "").strip())
            if entry:
                digest = (row.get("sha256") or "").strip() or None
                last[entry] = Decision(entry, (row["decision"] or "").strip(), digest)
    return list(last.values())


def _label(decision: Decision, class_names: list[str], multilabel: bool, file: Path):
    """The class index (or multi-hot row) a decision names; DataError for an unknown class."""
    names = [n.strip() for n in decision.decision.split(";") if n.strip()]
    unknown = [n for n in names if n not in class_names]
    if unknown or not names or (len(names) > 1 and not multilabel):
        raise DataError(
            f"data.relabel: {file}: decision {decision.decision!r} for {decision.entry} is not "
            f"{'class names separated by ;' if multilabel else 'one class name'}, keep or "
            f"exclude (classes: {', '.join(class_names)})"
        )
    if not multilabel:
        return class_names.index(names[0])
    row = np.zeros(len(class_names), np.float32)
    row[[class_names.index(n) for n in names]] = 1
    return row


def _warn(what: str, entries: list[str], file: Path) -> None:
    shown = ", ".join(entries[:MAX_LISTED]) + (", ..." if len(entries) > MAX_LISTED else "")
    warnings.warn(f"data.relabel ({file}): {len(entries)} {what}: {shown}", stacklevel=3)


def apply_decisions(
    file: str | Path, train_dir: Path, paths: list[Path], labels: np.ndarray, class_names
) -> tuple[np.ndarray, np.ndarray]:
    """(labels with the decisions applied, indices into ``paths`` of the excluded files)."""
    file = Path(file)
    index = {Path(p).resolve(): i for i, p in enumerate(paths)}
    labels = np.array(labels, copy=True)
    multilabel = labels.ndim == 2
    excluded, unmatched, changed = [], [], []
    for decision in read_decisions(file):
        i = index.get(_locate(decision.entry, train_dir).resolve())
        if i is None:
            unmatched.append(decision.entry)
            continue
        if decision.sha256 and hashlib.sha256(Path(paths[i]).read_bytes()).hexdigest() != (
            decision.sha256.lower()
        ):
            changed.append(decision.entry)
        elif decision.decision == EXCLUDE:
            excluded.append(i)
        elif decision.decision != KEEP:
            labels[i] = _label(decision, class_names, multilabel, file)
    if changed:
        _warn("files changed since their decision (not applied)", changed, file)
    if unmatched:
        _warn("paths are not readable training images (nothing applied)", unmatched, file)
    return labels, np.array(sorted(excluded), dtype=np.int64)


def relabel_rows(file, train_dir, paths, labels, class_names, train_idx, val_idx, excluded_idx):
    """(labels, train, val, excluded) with the decisions applied after the split."""
    new_labels, dropped = apply_decisions(file, train_dir, paths, labels, class_names)
    keep_train = train_idx[~np.isin(train_idx, dropped)]
    emptied = [
        name
        for name, n in zip(class_names, class_totals(new_labels[keep_train], len(class_names)))
        if n == 0
    ]
    if emptied:
        raise DataError(f"data.relabel ({file}) leaves no training image of: {', '.join(emptied)}")
    excluded = np.union1d(excluded_idx, dropped).astype(np.int64)
    return new_labels, keep_train, val_idx[~np.isin(val_idx, dropped)], excluded
