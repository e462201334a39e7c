"""``scenes evaluate`` for a multi-label model: mean average precision over classes (the
headline: it does not depend on thresholds), and at the bundle's per-class thresholds each
class's precision, recall, F1 and confusion counts (TP, FP, FN, TN), micro and macro F1, and a
grid of the images whose predicted labels are furthest from the true ones."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import plots
from ..atomic import replacing, write_text
from ..console import plural
from ..csvfile import SafeWriter
from ..data.multilabel import label_text
from .outputs import ERROR_GRID, METRICS_JSON, PER_CLASS_CSV, PREDICTIONS_CSV, closing_lines

if TYPE_CHECKING:
    from ..serve.answers import Answers
    from ..serve.predictor import Predictor

COUNTS = ("tp", "fp", "fn", "tn")


@dataclass
class MultilabelResult:
    map: float  # mean over classes of average precision (classes with a positive image)
    micro_f1: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # ap, precision, recall, f1, tp, fp, fn, tn, support
    class_names: list[str]
    thresholds: list[float]
    predictions: list[dict]  # path, true, predicted (label lists), probs, wrong (count)
    out_dir: Path | None = None
    source: str = ""
    tta: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    accepted_share: float | None = None
    logits: np.ndarray | None = field(default=None, repr=False)
    probs: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_images(self) -> int:
        return len(self.predictions)

    def summary(self) -> dict:
        return {
            "task": "multilabel",
            "source": self.source,
            "tta": self.tta,
            "num_images": self.num_images,
            "num_skipped": len(self.skipped),
            "map": self.map,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "thresholds": dict(zip(self.class_names, self.thresholds)),
            "accepted_share": self.accepted_share,
            "class_names": self.class_names,
            "per_class": self.per_class,
            "skipped": self.skipped,
        }


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, thresholds: list[float], class_names: list[str]
) -> dict:
    """torchmetrics' average precision per class, and its counts and F1 of the labels at the
    thresholds (per class, so the binary predictions are made here and scored at 0.5)."""
    from torchmetrics.classification import (
        MultilabelAveragePrecision,
        MultilabelF1Score,
        MultilabelStatScores,
    )

    n = len(class_names)
    p = torch.as_tensor(probs, dtype=torch.float32)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    predicted = (p >= torch.as_tensor(thresholds, dtype=torch.float32)).long()
    with warnings.catch_warnings():  # a class with no positive image: its AP is NaN below
        warnings.filterwarnings("ignore", message="No positive samples")
        ap = MultilabelAveragePrecision(num_labels=n, average=None)(p, t)
    stats = MultilabelStatScores(num_labels=n, average=None)(predicted, t)  # tp fp tn fn sup
    f1 = MultilabelF1Score(num_labels=n, average=None, zero_division=0)(predicted, t)
    positives = t.sum(dim=0) > 0
    per_class = {}
    for i, name in enumerate(class_names):
        tp, fp, tn, fn, support = (int(v) for v in stats[i])
        per_class[name] = {
            "ap": float(ap[i]) if positives[i] else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": float(f1[i]),
            **dict(zip(COUNTS, (tp, fp, fn, tn))),
            "support": support,
        }
    return {
        "map": float(ap[positives].mean()) if positives.any() else float("nan"),
        "micro_f1": float(MultilabelF1Score(num_labels=n, average="micro")(predicted, t)),
        "macro_f1": float(f1[positives].mean()) if positives.any() else float("nan"),
        "per_class": per_class,
    }


def multilabel_result(
    found: Answers, targets: np.ndarray, paths: list[Path], logits: np.ndarray, **details
) -> MultilabelResult:
    meta = found.meta
    thresholds = meta.thresholds or [0.5] * len(meta.class_names)
    metrics = multilabel_metrics(found.probs, targets, thresholds, meta.class_names)
    rows = []
    for i, path in enumerate(paths):
        answer = found.prediction(i, len(meta.class_names))
        true = label_text(targets[i], meta.class_names).split()
        wrong = len(set(true) ^ set(answer.labels or []))
        rows.append(
            {
                "path": str(path),
                "true": true,
                "predicted": answer.labels,
                "wrong": wrong,
                "probs": dict(answer),
                "accepted": answer.accepted,
            }
        )
    return MultilabelResult(
        **metrics,
        class_names=list(meta.class_names),
        thresholds=list(thresholds),
        predictions=rows,
        logits=logits,
        probs=found.probs,
        **details,
    )


def write_multilabel_outputs(result: MultilabelResult, model: Predictor, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / METRICS_JSON, json.dumps(result.summary(), indent=2) + "\n")
    columns = ["ap", "precision", "recall", "f1", *COUNTS, "support"]
    with replacing(out_dir / PER_CLASS_CSV) as fh:
        writer = SafeWriter(fh)
        writer.writerow(["class", "threshold", *columns])
        for name, threshold in zip(result.class_names, result.thresholds):
            writer.writerow([name, threshold, *(result.per_class[name][c] for c in columns)])
    with replacing(out_dir / PREDICTIONS_CSV) as fh:
        writer = SafeWriter(fh)
        writer.writerow(["path", "true", "predicted", *(f"prob_{n}" for n in result.class_names)])
        for p in result.predictions:
            cells = [p["path"], " ".join(p["true"]), " ".join(p["predicted"] or [])]
            writer.writerow([*cells, *(repr(p["probs"][n]) for n in result.class_names)])
    worst = sorted((p for p in result.predictions if p["wrong"]), key=lambda p: -p["wrong"])[:16]
    captions = [
        f"true {' '.join(p['true']) or '-'}\npred {' '.join(p['predicted'] or []) or '-'}"
        for p in worst
    ]
    images = [model.load_image(p["path"]) for p in worst]
    title = "Most wrong labels (false positives and negatives)" if worst else "No mistakes"
    plots.plot_image_grid(images, captions, out_dir / ERROR_GRID, title=title)
    return out_dir


def format_multilabel(result: MultilabelResult) -> str:
    width = max(9, *(len(n) for n in result.class_names))
    lines = [
        f"evaluated {plural(result.num_images, 'image')} from {result.source}"
        + (" (TTA: image + horizontal flip)" if result.tta else ""),
        f"mean average precision {result.map:.4f}   micro F1 {result.micro_f1:.4f}   "
        f"macro F1 {result.macro_f1:.4f} (at each class's threshold)",
    ]
    if result.accepted_share is not None:
        lines.append(f"accepted as showing the known classes: {result.accepted_share:.1%}")
    head = ["threshold", "AP", "precision", "recall", "F1", "TP", "FP", "FN", "TN"]
    lines += ["", f"{'class':<{width}} " + " ".join(f"{h:>9}" for h in head)]
    for name, threshold in zip(result.class_names, result.thresholds):
        m = result.per_class[name]
        scores = [threshold, m["ap"], m["precision"], m["recall"], m["f1"]]
        lines.append(
            f"{name:<{width}} "
            + " ".join(f"{v:>9.4f}" for v in scores)
            + " "
            + " ".join(f"{m[c]:>9d}" for c in COUNTS)
        )
    return "\n".join(lines + closing_lines(result))
