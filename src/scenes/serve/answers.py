"""What a prediction is, shared by every backend and command: the types, and the one softmax
that turns a backend's logits into the probabilities every path reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Source = str | Path | Image.Image  # a file, or an image already decoded by PIL
Prediction = list[tuple[str, float]]  # (label, probability), best first


@dataclass
class PredictionRow:
    source: str
    top: Prediction  # empty when the file could not be read
    error: str | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum so no logit overflows."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def best_classes(probs: np.ndarray, class_names: list[str], k: int) -> Prediction:
    """The ``k`` most likely classes of one row of probabilities, ties in class order."""
    order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(probs)))]
    return [(class_names[i], float(probs[i])) for i in order]


def source_name(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "<image>"
