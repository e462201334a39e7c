"""What a prediction is, shared by every backend and command: the types, and the one place
where a backend's logits become the probabilities, labels and acceptance every path reports
(``Answers.of``): the temperature, the softmax (or sigmoids and thresholds for multi-label),
the k-NN acceptance of unknown photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..models.acceptance import knn_distance
from ..models.meta import BundleMeta
from ..models.probabilities import sigmoid, softmax

Source = str | Path | Image.Image  # a file, or an image already decoded by PIL


class Prediction(list):
    """[(label, probability), ...] best first (a list: it unpacks and prints as the pairs it is),
    and what else is known:
    ``accepted`` (is it one of the known classes at all; None when the model does not say),
    ``score`` (its k-NN distance to the training images: larger is stranger), ``labels``
    (multi-label: the classes at or above their thresholds, best first), ``every`` (multi-label:
    every class's probability, whatever the top k, as each row of predictions carries them)."""

    def __init__(self, top=(), accepted=None, score=None, labels=None, every=None):
        super().__init__(top)
        self.accepted: bool | None = accepted
        self.score: float | None = score
        self.labels: list[str] | None = labels
        self.every: dict[str, float] | None = every


@dataclass
class PredictionRow:
    source: str
    top: Prediction = field(default_factory=Prediction)  # empty when the file was unreadable
    error: str | None = None


def label_columns(top_k: int, class_names: list[str]) -> int:
    """How many ``label_i`` columns ``--top-k`` gives: at most one per class, at least one."""
    return max(1, min(top_k, len(class_names)))


def best_classes(probs: np.ndarray, class_names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most likely classes of one row of probabilities, ties in class order."""
    order = np.argsort(-probs, kind="stable")[: label_columns(k, class_names)]
    return [(class_names[i], float(probs[i])) for i in order]


def source_name(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "<image>"


@dataclass
class Answers:
    """A batch's answers: probabilities (B, classes), and per image its k-NN distance and
    acceptance (None when the bundle has no acceptance or it is switched off)."""

    probs: np.ndarray
    scores: np.ndarray | None
    meta: BundleMeta

    @classmethod
    def of(
        cls,
        meta: BundleMeta,
        logits: np.ndarray,
        features: np.ndarray | None = None,
        reference: np.ndarray | None = None,
    ) -> Answers:
        if meta.task == "multilabel":
            probs = sigmoid(logits)
        else:
            probs = softmax(np.asarray(logits, dtype=np.float32) / np.float32(meta.temperature))
        scores = None
        if meta.acceptance is not None and features is not None and reference is not None:
            scores = knn_distance(features, reference, meta.acceptance.k)
        return cls(probs, scores, meta)

    def prediction(self, i: int, k: int) -> Prediction:
        """Image ``i``'s answer: its top ``k``, acceptance and (multi-label) labels."""
        meta = self.meta
        top = best_classes(self.probs[i], meta.class_names, k)
        labels = every = None
        if meta.task == "multilabel":
            thresholds = meta.thresholds or [0.5] * len(meta.class_names)
            over = [j for j, p in enumerate(self.probs[i]) if p >= thresholds[j]]
            labels = [meta.class_names[j] for j in sorted(over, key=lambda j: -self.probs[i][j])]
            every = dict(zip(meta.class_names, map(float, self.probs[i])))
        if self.scores is None:
            return Prediction(top, labels=labels, every=every)
        score = float(self.scores[i])
        return Prediction(top, score <= meta.acceptance.threshold, score, labels, every)
