"""Which images of a run are trained on, validated on or left out: a fresh stratified split
(exact duplicates kept on one side, less ``data.exclude``'s files), or, on resume, the saved
``split.csv`` as it is."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import plural
from ..errors import DataError
from ..rundir import SplitRow
from .exclude import apply_exclusion
from .multilabel import label_text, split_multilabel
from .split import split_train_val


def split_rows(
    cfg: Config,
    train_dir: Path,
    paths: list[Path],
    labels: np.ndarray,
    class_names: list[str],
    digests: list[str],
    saved_split: list[SplitRow] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and excluded rows: the saved split as it is, else a fresh split
    (exact duplicates kept on one side) less ``data.exclude``'s files."""
    if saved_split is not None:
        return reuse_split(saved_split, paths, labels, class_names)
    split = split_multilabel if labels.ndim == 2 else split_train_val
    train_idx, val_idx = split(labels, cfg.data.val_fraction, cfg.data.split_seed, groups=digests)
    if not cfg.data.exclude:
        return train_idx, val_idx, np.empty(0, dtype=np.int64)
    return apply_exclusion(
        cfg.data.exclude, train_dir, paths, labels, class_names, train_idx, val_idx
    )


def reuse_split(
    saved: list[SplitRow], paths: list[Path], labels: np.ndarray, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, excluded) indices into ``paths`` as ``saved`` lists them. A resumed run
    must see the images it started with: a listed image that is gone or relabelled is an
    error; an image added since is left out (with a warning), as it was not part of the run."""
    index = {p.resolve(): i for i, p in enumerate(paths)}
    sides: dict[str, list[int]] = {"train": [], "val": [], "excluded": []}
    gone, relabelled = [], []
    for row in saved:
        if row.split not in sides:
            continue
        i = index.pop(row.path.resolve(), None)
        if row.split == "excluded":  # left out on purpose: it may be gone or relabelled since
            if i is not None:
                sides["excluded"].append(i)
        elif i is None:
            gone.append(row.path)
        elif label_text(labels[i], class_names) != (row.given_label or row.label):
            relabelled.append(row.path)
        else:
            sides[row.split].append(i)
    if gone or relabelled:
        examples = ", ".join(str(p) for p in (gone + relabelled)[:3])
        raise DataError(
            f"the data changed since the run started: {plural(len(gone), 'image')} of its split.csv "
            f"are gone or unreadable and {len(relabelled)} have another class now "
            f"(e.g. {examples}); resume with the data the run was started on, or start a new run"
        )
    if index:
        warnings.warn(
            f"{plural(len(index), 'image')} added to the data since the run started; the resumed "
            "run leaves them out, as its split.csv does not list them",
            stacklevel=2,
        )
    train_idx, val_idx, excluded_idx = (np.sort(np.asarray(sides[k], np.int64)) for k in sides)
    return train_idx, val_idx, excluded_idx
