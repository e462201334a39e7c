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


def epoch_metrics(num_classes: int, task: str = "multiclass") -> MetricCollection:
    """Accumulated over an epoch's batches (and summed over DDP processes) by torchmetrics:
    single-label: top-1 accuracy and macro F1 of logits against class indices; multi-label:
    mean average precision over classes and macro F1 at 0.5, of probabilities against
    multi-hot targets."""
    if task == "multilabel":
        from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

        return MetricCollection(
            {
                "map": MultilabelAveragePrecision(num_labels=num_classes, average="macro"),
                "f1": MultilabelF1Score(num_labels=num_classes, average="macro", zero_division=0),
            }
        )
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_classes, average="macro", zero_division=0),
        }
    )


ECE_BINS = 15


def expected_calibration_error(probs, y_true, n_bins: int = ECE_BINS) -> float:
    """How far confidence is from accuracy: the top-class confidence in equal-width bins,
    |accuracy - mean confidence| weighted by the bin's share of images (torchmetrics)."""
    from torchmetrics.classification import MulticlassCalibrationError

    probs = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(probs, target))


def compute_metrics(
    y_true: list[int] | np.ndarray | torch.Tensor,
    y_pred: list[int] | np.ndarray | torch.Tensor,
    class_names: list[str],
) -> dict:
    """Top-1 accuracy, macro F1, per-class precision/recall/F1/support, confusion matrix.

    A class that is never predicted has precision 0 (not NaN). ``macro_f1`` averages over the
    classes that occur in the labels or the predictions, like scikit-learn's default, so a
    class absent from both does not drag the score down; ``f1_classes`` names them. A class
    absent from the labels but predicted counts there with F1 0 (each such prediction is a
    mistake), so ``macro_f1_present`` also gives the mean over the classes in the labels only
    (``present_classes``): on a folder with some classes missing, the two say different things.
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
    predicted = confusion.sum(dim=0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    present = [i for i in range(n) if support[i] > 0]
    return {
        "accuracy": float(accuracy),
        "macro_f1": float(macro_f1),
        "f1_classes": [class_names[i] for i in range(n) if support[i] > 0 or predicted[i] > 0],
        "macro_f1_present": float(f1[present].mean()),
        # The mean recall of the classes present: top-1 as if every class had as many images.
        "balanced_accuracy": float(recall[present].mean()),
        "present_classes": [class_names[i] for i in present],
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
