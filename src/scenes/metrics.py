"""The numbers a classifier is judged by, defined once (torchmetrics) for training's epoch
table and for ``scenes evaluate``: multiclass top-1 accuracy (micro: over all images, not
the one-vs-rest mean) and macro F1 (the unweighted mean of per-class F1)."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from .errors import DataError


def epoch_metrics(num_classes: int) -> MetricCollection:
    """Accumulated over an epoch's batches (and summed over DDP processes) by torchmetrics."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_classes, average="macro", zero_division=0),
        }
    )


def compute_metrics(
    y_true: list[int] | np.ndarray | torch.Tensor,
    y_pred: list[int] | np.ndarray | torch.Tensor,
    class_names: list[str],
) -> dict:
    """Top-1 accuracy, macro F1, per-class precision/recall/F1/support, confusion matrix.

    A class that is never predicted has precision 0 (not NaN). Macro F1 averages over the
    classes that occur in the labels or the predictions, like scikit-learn's default, so a
    class absent from a test folder does not drag the score down.
    """
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    preds = torch.as_tensor(np.asarray(y_pred), dtype=torch.long)
    if target.numel() == 0:
        raise DataError("nothing to evaluate: no readable labelled images")
    n = len(class_names)
    common = dict(num_classes=n, zero_division=0)
    accuracy = MulticlassAccuracy(average="micro", **common)(preds, target)
    macro_f1 = MulticlassF1Score(average="macro", **common)(preds, target)
    precision = MulticlassPrecision(average=None, **common)(preds, target)
    recall = MulticlassRecall(average=None, **common)(preds, target)
    f1 = MulticlassF1Score(average=None, **common)(preds, target)
    confusion = MulticlassConfusionMatrix(num_classes=n)(preds, target)
    support = confusion.sum(dim=1)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
