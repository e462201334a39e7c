"""The order in which to label photos, from the model's probabilities (pure numpy).

- ``margin``: the top-1 minus the top-2 probability, smallest first (the model hesitates
  between two classes).
- ``entropy``: the entropy of the probabilities, highest first (it hesitates among many).
- ``diverse``: k-center greedy on the features among the ``CANDIDATES_PER_PICK * n`` smallest
  margins, so that a burst of near-identical uncertain photos yields one of them, not all.
- ``random``: a seeded permutation, the baseline every strategy has to beat.

Each returns the chosen indices in the order to label them; ties keep the pool's order
(stable sorts), so the same pool always gives the same list.
"""

from __future__ import annotations

import numpy as np

from ..choices import SELECT_STRATEGIES as STRATEGIES

# ``diverse`` looks at the 5n most uncertain photos. k-center greedy can only leave a burst of
# near-identical photos when the candidates hold more than the burst, so the factor must not be
# small; but the more candidates, the less uncertain the picks: on Intel (benchmarks/
# active_learning.py, 5 seeds, 750 labels) 10n scored 90.08% against random's 90.38%, 5n 90.48%,
# 3n 91.12%, margin alone 91.76%. 5n keeps room for a burst of 4n and loses nothing to random.
CANDIDATES_PER_PICK = 5


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row (0: a tie; 1: certain)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = -np.partition(-probs, 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def entropies(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row; a probability of 0 adds nothing."""
    probs = np.asarray(probs, dtype=np.float64)
    logs = np.log(np.where(probs > 0, probs, 1.0))
    return -(probs * logs).sum(axis=1)


def by_margin(probs: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(margins(probs), kind="stable")[:n]


def by_entropy(probs: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-entropies(probs), kind="stable")[:n]


def at_random(count: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(count)[:n]


def k_center_greedy(features: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``features``, each the farthest (cosine distance) from those already
    picked; the first is row 0. Rows are expected in order of preference (most uncertain
    first), so among equally far rows the more uncertain one wins (argmax takes the first)."""
    unit = np.asarray(features, dtype=np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    n = min(n, len(unit))
    picked = [0]
    nearest = 1.0 - unit @ unit[0]  # distance of every row to the nearest pick
    for _ in range(n - 1):
        nearest[picked] = -np.inf  # never picked twice
        best = int(np.argmax(nearest))
        picked.append(best)
        nearest = np.minimum(nearest, 1.0 - unit @ unit[best])
    return np.asarray(picked, dtype=np.int64)


def diverse(
    probs: np.ndarray, features: np.ndarray, n: int, per_pick: int = CANDIDATES_PER_PICK
) -> np.ndarray:
    """k-center greedy among the ``per_pick * n`` smallest margins, starting from the
    smallest: the order in which they were picked."""
    if len(features) != len(probs):
        raise ValueError(f"{len(features)} feature rows for {len(probs)} probability rows")
    candidates = by_margin(probs, per_pick * n)
    if len(candidates) == 0:
        return candidates
    return candidates[k_center_greedy(features[candidates], n)]


def select(
    strategy: str,
    probs: np.ndarray,
    n: int,
    features: np.ndarray | None = None,
    seed: int = 0,
    per_pick: int = CANDIDATES_PER_PICK,
) -> tuple[np.ndarray, np.ndarray]:
    """(chosen row indices in the order to label, each one's score): the margin for
    ``margin``, ``diverse`` and ``random`` (so every row has one, and lists compare), the
    entropy for ``entropy``. ``per_pick``: ``diverse``'s candidates per photo chosen."""
    n = min(n, len(probs))
    if strategy == "margin":
        chosen = by_margin(probs, n)
    elif strategy == "entropy":
        chosen = by_entropy(probs, n)
        return chosen, entropies(probs)[chosen]
    elif strategy == "diverse":
        if features is None:
            raise ValueError("the diverse strategy needs features")
        chosen = diverse(probs, features, n, per_pick)
    elif strategy == "random":
        chosen = at_random(len(probs), n, seed)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return chosen, margins(probs)[chosen]
