"""After training, on the first process: what the bundle needs beside its weights, fitted on
data the weights were not trained on (the validation split) or kept from the training split.

- temperature scaling (Guo et al. 2017): one scalar dividing the logits, fitted by minimising
  the validation negative log-likelihood, so a probability of 0.9 is right about 90% of the
  time; it changes no prediction;
- the acceptance of unknown photos (``models.acceptance``): reference features of a sample of
  training images, and the k-NN distance that accepts ``serve.accept_rate`` of the validation
  photos.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ..config import Config
from ..console import stage
from ..data.loaders import PreparedData
from ..data.transforms import normalize_batch
from ..models.acceptance import knn_distance, normalise, reference_rows, threshold_for
from ..models.base import WithFeatures
from ..models.meta import Acceptance, BundleMeta
from ..models.probabilities import sigmoid

log = logging.getLogger(__name__)

BATCH = 64


@torch.inference_mode()
def logits_and_features(
    module: torch.nn.Module, meta: BundleMeta, pixels: Sequence[np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and penultimate features of ``pixels[rows]`` (uint8 HWC images), eval mode."""
    model = WithFeatures(module, meta.head).eval()
    device = next(module.parameters()).device
    dtype = next(module.parameters()).dtype
    logits, features = [], []
    with stage("calibrating", len(rows)) as bar:
        for start in range(0, len(rows), BATCH):
            batch = np.stack([pixels[int(i)] for i in rows[start : start + BATCH]])
            x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(device)
            x = normalize_batch(x, meta.mean, meta.std, meta.channels_last).to(dtype)
            out, feats = model(x)
            logits.append(out.float().cpu().numpy())
            features.append(feats.float().cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(logits), np.concatenate(features)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean negative log-likelihood of softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")  # T in [0.05, 20]
    return float(np.exp(best.x))


def best_thresholds(probs: np.ndarray, targets: np.ndarray) -> list[float]:
    """Per class, the probability threshold with the best F1 on these (validation) images;
    0.5 for a class with no positive image among them."""
    from sklearn.metrics import precision_recall_curve

    chosen = []
    for c in range(probs.shape[1]):
        if not targets[:, c].any():
            chosen.append(0.5)
            continue
        precision, recall, thresholds = precision_recall_curve(targets[:, c], probs[:, c])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        chosen.append(float(thresholds[int(np.argmax(f1[:-1]))]))
    return chosen


def calibrate(
    module: torch.nn.Module, meta: BundleMeta, data: PreparedData, cfg: Config
) -> tuple[BundleMeta, np.ndarray | None]:
    """``meta`` with the temperature and the acceptance fitted, and the acceptance's
    reference features (None when ``serve.accept_rate`` is null)."""
    serve = cfg.serve
    val_rows = np.arange(len(data.val))
    val_logits, val_features = logits_and_features(module, meta, data.val.pixels, val_rows)
    update: dict = {}
    if meta.task == "multilabel":
        update["thresholds"] = best_thresholds(sigmoid(val_logits), data.val.labels)
    elif serve.calibrate:
        update["temperature"] = fit_temperature(val_logits, data.val.labels)
    reference = None
    if serve.accept_rate is not None:
        rows = reference_rows(data.train.labels, serve.reference_images, cfg.seed)
        _, train_features = logits_and_features(module, meta, data.train.pixels, rows)
        reference = normalise(train_features)
        scores = knn_distance(val_features, reference, serve.knn_k)
        update["acceptance"] = Acceptance(
            k=serve.knn_k,
            threshold=threshold_for(scores, serve.accept_rate),
            accept_rate=serve.accept_rate,
        )
    return BundleMeta.model_validate({**meta.model_dump(), **update}), reference
