"""Is a photo one of the known classes at all? The k-nearest-neighbour distance of its
normalised penultimate features to those of training images (Sun et al., "Out-of-distribution
detection with deep nearest neighbors", ICML 2022): a photo unlike every training image is
far from all of them, whatever the softmax says. The threshold accepts a chosen share of the
validation photos.

NumPy only (no torch): serving with ONNX Runtime scores photos the same way. The reference is
a few thousand training images, so the distances are one matrix product.
"""

from __future__ import annotations

import numpy as np


def normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def knn_distance(features: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distance of each (normalised) row of ``features`` to its k-th nearest row of
    the (normalised) ``reference``; in [0, 2]."""
    query = normalise(features)
    # |a - b|^2 = 2 - 2 a.b for unit vectors
    similarity = query @ reference.T
    k = min(k, reference.shape[0])
    kth = np.partition(-similarity, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.clip(2.0 + 2.0 * kth, 0.0, 4.0))


def reference_rows(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` training rows, every class in proportion (seeded), sorted. Multi-label
    rows (an (images, classes) array) are drawn uniformly: an image belongs to several
    classes, so per-class strata would overlap."""
    labels = np.asarray(labels)
    if len(labels) <= count:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        return np.sort(rng.choice(len(labels), count, replace=False))
    share = count / len(labels)
    rows = [
        rng.choice(members, max(1, round(len(members) * share)), replace=False)
        for members in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    return np.sort(np.concatenate(rows))


def threshold_for(scores: np.ndarray, accept_rate: float) -> float:
    """The distance at or under which ``accept_rate`` of ``scores`` (validation photos) fall."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), accept_rate))
