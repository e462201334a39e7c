"""Near-duplicate photos: the same picture re-encoded, resized, slightly cropped or brightened.

Two photos are near-duplicates when their *near distance* is at most ``NEAR_DISTANCE``: the
cosine distance between their ImageNet MobileNetV2 features plus ``HASH_WEIGHT`` times the
fraction of their perceptual hashes' bits (``imagehash.phash``, 64 bits) that differ. Each
measure alone fails somewhere (measured in ``benchmarks/near_duplicates.py``; docs/results.md):
- the features find crops, but the blur of a resized copy moves them as far as an unrelated
  photo of the same kind of scene, and on a large folder many different photos of similar
  scenes (two sunsets, two valleys) lie as close as copies;
- pHash finds re-encoded, resized and brightened copies, but a crop moves it far, and dark or
  smooth photos share most of their bits.
Added, each vouches for the other: a copy is close by both, an unrelated look-alike only by
one. An earlier test called a pair near when *either* measure did; on the whole Intel split it
chained different photos into groups of dozens.
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
NEAR_DISTANCE = 0.2  # of near_distance; measured in benchmarks/near_duplicates.py
HASH_WEIGHT = 0.5  # of the fraction of pHash bits that differ; measured there too
PAIR_BLOCK = 1024  # rows compared at once: a block's distances take 4 bytes x 1024 x photos


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


def _differing_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, how many bits differ between two (n, 64) bool arrays."""
    return np.bitwise_count(np.packbits(a, axis=1) ^ np.packbits(b, axis=1)).sum(axis=1)


def near_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    bits_a: np.ndarray,
    bits_b: np.ndarray,
    hash_weight: float = HASH_WEIGHT,
) -> np.ndarray:
    """Row by row: cosine distance of the (unit) features + hash_weight x the fraction of
    pHash bits that differ. 0 for the same bytes; near-duplicates at most NEAR_DISTANCE."""
    cosine = 1.0 - np.einsum("nd,nd->n", features_a, features_b)
    return _add_hash_term(cosine, bits_a, bits_b, hash_weight)


def _add_hash_term(cosine, bits_a, bits_b, hash_weight: float) -> np.ndarray:
    cosine = np.clip(cosine, 0.0, None)
    if not hash_weight:
        return cosine
    return cosine + hash_weight * _differing_bits(bits_a, bits_b) / bits_a.shape[1]


def _within(queries, query_bits, references, reference_bits, threshold, hash_weight, above=False):
    """(query row, reference row, near distance) of every pair within ``threshold``, a block
    of queries at a time (memory: one block's cosine distances to every reference). The hash
    term is never negative, so only pairs whose cosine distance alone is within the threshold
    are candidates. ``above``: keep only reference rows above the query's (pairs in one set)."""
    found = []
    for start in range(0, len(queries), PAIR_BLOCK):
        cosine = 1.0 - queries[start : start + PAIR_BLOCK] @ references.T
        rows, refs = np.nonzero(cosine <= threshold)
        if above:
            keep = refs > rows + start
            rows, refs = rows[keep], refs[keep]
        distance = _add_hash_term(
            cosine[rows, refs], query_bits[rows + start], reference_bits[refs], hash_weight
        )
        keep = distance <= threshold
        found.append(np.stack([rows[keep] + start, refs[keep], distance[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 3))


def near_pairs(
    features: np.ndarray,
    bits: np.ndarray,
    threshold: float = NEAR_DISTANCE,
    hash_weight: float = HASH_WEIGHT,
) -> np.ndarray:
    """(i, j, near distance) rows, i < j, of every pair within ``threshold``."""
    return _within(features, bits, features, bits, threshold, hash_weight, above=True)


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
    """(query row, reference row, near distance) of each query within NEAR_DISTANCE of a
    reference, with its nearest such reference."""
    pairs = _within(
        queries.features,
        queries.bits,
        references.features,
        references.bits,
        NEAR_DISTANCE,
        HASH_WEIGHT,
    )
    nearest: dict[int, tuple[int, float]] = {}
    for row, ref, distance in pairs.tolist():
        if int(row) not in nearest or distance < nearest[int(row)][1]:
            nearest[int(row)] = (int(ref), distance)
    return [(row, ref, distance) for row, (ref, distance) in sorted(nearest.items())]
