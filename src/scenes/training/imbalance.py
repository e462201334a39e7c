"""Imbalanced classes: the loss weights of ``train.class_weights``, and the notice a run
gives when its training classes are imbalanced."""

from __future__ import annotations

import numpy as np

# Largest class over smallest above which a run says its classes are imbalanced.
IMBALANCE_RATIO = 3.0


def class_weights(counts: np.ndarray, kind: str, beta: float = 0.999) -> np.ndarray | None:
    """Per-class loss weights (mean 1) from the training images per class; None for "none".

    balanced: inverse frequency. effective: the inverse "effective number of samples",
    (1 - beta^n) / (1 - beta), of Cui et al. 2019: like inverse frequency for small classes,
    flattening for large ones, whose extra images add less and less new information.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if kind == "none":
        return None
    if kind == "balanced":
        raw = 1.0 / np.maximum(counts, 1.0)
    elif kind == "effective":
        raw = (1.0 - beta) / (1.0 - np.power(beta, np.maximum(counts, 1.0)))
    else:
        raise ValueError(f"unknown class_weights {kind!r}")
    return raw * len(raw) / raw.sum()


def imbalance_notice(
    counts: np.ndarray, class_names: list[str], cfg, untrained: list[str] = ()
) -> str | None:
    """One line when the largest training class is over IMBALANCE_RATIO times the smallest
    and neither option for it is on; None otherwise.

    ``untrained``: classes left without training images on purpose (an ``--init`` run's old
    classes the new data lacks). The run warns of them in its own words, so they are left out
    here rather than reported as "0 images (450.0x)".
    """
    counts = np.asarray(counts)
    skipped = set(untrained)
    kept = [i for i, name in enumerate(class_names) if name not in skipped]
    if len(kept) < 2:
        return None
    ratio = counts[kept].max() / max(counts[kept].min(), 1)
    if ratio <= IMBALANCE_RATIO:
        return None
    big = kept[int(counts[kept].argmax())]
    small = kept[int(counts[kept].argmin())]
    text = (
        f"the training classes are imbalanced: {class_names[big]} has {counts[big]:,} images, "
        f"{class_names[small]} {counts[small]:,} ({ratio:.1f}x); watch macro F1 and per-class "
        "recall rather than top-1"
    )
    if cfg.train.class_weights == "none" and cfg.data.sampler == "shuffle":
        text += (
            "; --set train.class_weights=balanced (or effective) or --set data.sampler=balanced "
            "counts the small classes more"
        )
    return text
