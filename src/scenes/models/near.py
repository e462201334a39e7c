"""Near-duplicate photos: the same picture re-encoded, resized, slightly cropped or brightened.

Two photos are near-duplicates when either of two tests says so, each the better one for
some changes (measured in ``benchmarks/near_duplicates.py``; docs/results.md):
- their perceptual hashes (``imagehash.phash``, 64 bits) differ in at most ``HASH_BITS`` bits:
  it finds JPEG re-encoded, resized and brightened copies, but a crop moves it too far;
- the cosine distance between their ImageNet MobileNetV2 features is at most
  ``NEAR_DISTANCE``: they find crops, but blur (a resized copy) moves them as far as an
  unrelated photo of the same kind of scene.
The features are the ones ``scenes data issues`` caches by image content
(``features.image_features``), so a folder is embedded once. The backbone is fixed, not the
recipe's: the threshold was measured on these features, and another network's distances
mean something else.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEAR_BACKBONE = "mobilenet_v2"
# Named, not DEFAULT: DEFAULT is the best weights found on the machine, and the threshold
# was measured on these (mobilenet_v2-b0353104.pth).
NEAR_WEIGHTS = "IMAGENET1K_V1"
NEAR_IMAGE_SIZE = 150  # the Intel photos' own size
NEAR_DISTANCE = 0.08  # cosine distance; measured in benchmarks/near_duplicates.py
HASH_BITS = 10  # of pHash's 64 bits; measured there too


@dataclass
class EmbeddedFiles:
    """Features of the readable ones among ``paths``: row i is ``paths[kept[i]]``."""

    paths: list[Path]
    features: np.ndarray  # (len(kept), D) float32, L2-normalised
    kept: np.ndarray
    failed: dict[str, str]
    digests: list[str]  # content digest of each kept file
    bits: np.ndarray  # (len(kept), 64) bool: the pHash of each kept file


def near_backbone(weights_dir: str | None = None):
    from .features import pretrained_backbone

    return pretrained_backbone(
        NEAR_BACKBONE,
        NEAR_WEIGHTS,
        image_size=NEAR_IMAGE_SIZE,
        weights_dir=weights_dir,
        channels_last=False,
    )


def embed_files(
    paths: list[Path], backbone, cache_dir: Path | None, progress: bool = True
) -> EmbeddedFiles:
    """The backbone's features of ``paths`` (cached by content), normalised to unit length."""
    from .features import image_features

    found = image_features(list(paths), backbone, cache_dir, progress=progress)
    features = found.features.astype(np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    features = features / np.maximum(norms, 1e-12)
    kept = np.asarray(found.kept, np.int64)
    bits = phash_bits([paths[i] for i in kept])
    return EmbeddedFiles(list(paths), features, kept, found.failed, list(found.digests), bits)


def phash_bits(paths: list[Path]) -> np.ndarray:
    """(len(paths), 64) bool: each image's perceptual hash (decoded in threads)."""
    import imagehash
    from PIL import Image

    from ..choices import worker_count

    def bits(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return imagehash.phash(image.convert("RGB")).hash.reshape(-1)

    with ThreadPoolExecutor(worker_count()) as pool:
        found = list(pool.map(bits, paths))
    return np.stack(found) if found else np.zeros((0, 64), bool)


def _pairs(points: np.ndarray, radius: float, metric: str) -> set[tuple[int, int]]:
    from sklearn.neighbors import radius_neighbors_graph

    if len(points) < 2:
        return set()
    graph = radius_neighbors_graph(points, radius, mode="connectivity", metric=metric).tocoo()
    return {(int(i), int(j)) for i, j in zip(graph.row, graph.col) if i < j}


def near_pairs(
    features: np.ndarray,
    bits: np.ndarray,
    threshold: float = NEAR_DISTANCE,
    hash_bits: int = HASH_BITS,
) -> np.ndarray:
    """(i, j, cosine distance) rows, i < j, of every pair that either test calls near."""
    pairs = _pairs(features, threshold, "cosine") if threshold >= 0 else set()
    if hash_bits >= 0 and len(bits):  # a negative setting turns a test off (the benchmark)
        pairs |= _pairs(bits, (hash_bits + 0.5) / bits.shape[1], "hamming")
    if not pairs:
        return np.empty((0, 3))
    i, j = np.array(sorted(pairs)).T
    distance = np.clip(1.0 - np.einsum("nd,nd->n", features[i], features[j]), 0.0, None)
    return np.stack([i, j, distance], axis=1)


def group_pairs(count: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected components of the pair graph with two or more members, largest first."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return []
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(int(label), []).append(index)
    groups = [m for m in members.values() if len(m) > 1]
    return sorted(groups, key=lambda m: (-len(m), m[0]))


def nearest_reference(queries: EmbeddedFiles, references: EmbeddedFiles) -> list[tuple]:
    """(query row, reference row, cosine distance) of each query that either test calls a
    near-duplicate of a reference, with its nearest such reference (by features, else hash)."""
    from sklearn.neighbors import NearestNeighbors

    if not len(references.kept) or not len(queries.kept):
        return []
    by_features = NearestNeighbors(n_neighbors=1, metric="cosine").fit(references.features)
    distance, nearest = (a[:, 0] for a in by_features.kneighbors(queries.features))
    by_hash = NearestNeighbors(n_neighbors=1, metric="hamming").fit(references.bits)
    flipped, hashed = (a[:, 0] for a in by_hash.kneighbors(queries.bits))
    found = []
    for row in range(len(queries.kept)):
        if distance[row] <= NEAR_DISTANCE:
            found.append((row, int(nearest[row]), max(float(distance[row]), 0.0)))
        elif flipped[row] * queries.bits.shape[1] <= HASH_BITS + 0.5:
            ref = int(hashed[row])
            d = 1.0 - float(queries.features[row] @ references.features[ref])
            found.append((row, ref, max(d, 0.0)))
    return found
