"""Stratified, seeded train/validation split of the training folder."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DataError


def split_train_val(
    labels: list[int] | np.ndarray,
    val_fraction: float,
    seed: int,
    groups: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), each class represented in proportion; same seed -> same split.

    ``groups`` (e.g. content digests) keeps identical images on one side: a validation image
    whose exact copy is in train would measure memory, not generalisation. Such val members
    move to train, which shifts the val share by the number of duplicates only.
    """
    labels = np.asarray(labels)
    counts = Counter(labels.tolist())
    too_small = sorted(label for label, n in counts.items() if n < 2)
    if too_small:
        raise DataError(
            f"classes {too_small} have fewer than 2 images: a stratified validation split "
            "needs at least one image of each class on both sides"
        )
    n_val = max(len(counts), round(len(labels) * val_fraction))
    if len(labels) - n_val < len(counts):
        raise DataError(
            f"val_fraction={val_fraction} leaves too few training images "
            f"({len(labels)} images, {len(counts)} classes)"
        )
    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=n_val, stratify=labels, random_state=seed
    )
    return keep_copies_together(train_idx, val_idx, groups)


def keep_copies_together(
    train_idx: np.ndarray, val_idx: np.ndarray, groups: list[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val), sorted, with every validation image whose group (content digest) has a
    member in training moved to training: validation never scores a copy of a trained image."""
    if groups is not None:
        in_train = {groups[i] for i in train_idx}
        leaked = np.array([groups[i] in in_train for i in val_idx], dtype=bool)
        train_idx = np.concatenate([train_idx, val_idx[leaked]])
        val_idx = val_idx[~leaked]
    return np.sort(train_idx), np.sort(val_idx)
