"""An evaluation's result and what ``scenes evaluate`` leaves behind: metrics.json, per-class and confusion CSVs,
predictions.csv, the confusion-matrix figure and the grid of the most confident mistakes,
and the text it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import plots
from ..atomic import replacing, write_text
from ..console import plural
from ..csvfile import SafeWriter
from ..models.probabilities import softmax
from .leakage import leakage_lines

if TYPE_CHECKING:
    from ..serve.predictor import Predictor

ERROR_GRID_SIZE = 16
# What an evaluation folder (RUN/eval/<name>/) holds.
METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class.csv"
CONFUSION_CSV = "confusion_matrix.csv"
PREDICTIONS_CSV = "predictions.csv"
CONFUSION_MATRIX = "confusion_matrix.png"
ERROR_GRID = "errors.png"
RELIABILITY = "reliability.png"


@dataclass
class EvalResult:
    accuracy: float
    macro_f1: float  # over f1_classes: the classes in the labels or the predictions
    f1_classes: list[str]
    macro_f1_present: float  # over present_classes: the classes in the labels
    present_classes: list[str]
    balanced_accuracy: float  # mean recall over present_classes
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    class_names: list[str]
    predictions: list[dict]  # path, true, predicted, confidence, top3 [(label, prob)]
    out_dir: Path | None
    temperature: float = 1.0  # the bundle's (1: not calibrated)
    ece: float = float("nan")  # expected calibration error of the probabilities served
    ece_uncalibrated: float = float("nan")  # ... of the softmax without the temperature
    accepted_share: float | None = None  # share accepted as a known class (None: no acceptance)
    source: str = ""  # the folder or split evaluated
    tta: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable path -> error
    logits: np.ndarray | None = field(default=None, repr=False)  # (images, classes), raw
    probs: np.ndarray | None = field(default=None, repr=False)  # as served (temperature)
    leakage: dict | None = None  # near-duplicates of training images (evaluation/leakage.py)

    @property
    def num_images(self) -> int:
        return len(self.predictions)

    def summary(self) -> dict:
        """What metrics.json holds."""
        return {
            "source": self.source,
            "tta": self.tta,
            "num_images": self.num_images,
            "num_skipped": len(self.skipped),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "temperature": self.temperature,
            "ece": self.ece,
            "ece_uncalibrated": self.ece_uncalibrated,
            "accepted_share": self.accepted_share,
            "macro_f1": self.macro_f1,
            "macro_f1_classes": self.f1_classes,
            "macro_f1_present": self.macro_f1_present,
            "present_classes": self.present_classes,
            "class_names": self.class_names,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "skipped": self.skipped,
            **(self.leakage or {}),
        }


def most_confident_errors(predictions: list[dict], n: int = ERROR_GRID_SIZE) -> list[dict]:
    wrong = [p for p in predictions if p["predicted"] != p["true"]]
    return sorted(wrong, key=lambda p: p["confidence"], reverse=True)[:n]


def write_outputs(
    result: EvalResult, model: Predictor, out_dir: Path, explain: bool = False
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / METRICS_JSON, json.dumps(result.summary(), indent=2) + "\n")
    with replacing(out_dir / PER_CLASS_CSV) as fh:
        writer = SafeWriter(fh)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, m in result.per_class.items():
            writer.writerow([name, m["precision"], m["recall"], m["f1"], m["support"]])
    with replacing(out_dir / CONFUSION_CSV) as fh:
        writer = SafeWriter(fh)
        writer.writerow(["true\\predicted", *result.class_names])
        for name, row in zip(result.class_names, result.confusion):
            writer.writerow([name, *row])
    with replacing(out_dir / PREDICTIONS_CSV) as fh:
        writer = SafeWriter(fh)
        accepting = result.accepted_share is not None
        writer.writerow(
            ["path", "true", "predicted", "confidence", "top3", *(["accepted"] * accepting)]
        )
        for p in result.predictions:
            # repr() of a float round-trips: the confidence is kept at full precision.
            top3 = ";".join(f"{label}:{prob!r}" for label, prob in p["top3"])
            cells = [p["path"], p["true"], p["predicted"], repr(p["confidence"]), top3]
            writer.writerow([*cells, *([p["accepted"]] * accepting)])
    plots.plot_confusion_matrix(result.confusion, result.class_names, out_dir / CONFUSION_MATRIX)
    if result.logits is not None and result.probs is not None:
        truth = [result.class_names.index(p["true"]) for p in result.predictions]
        plots.plot_reliability(
            softmax(result.logits), result.probs, truth, out_dir / RELIABILITY, result.temperature
        )
    write_error_grid(result.predictions, model, out_dir / ERROR_GRID, explain)
    return out_dir


def write_error_grid(
    predictions: list[dict], model: Predictor, path: Path, explain: bool = False
) -> Path:
    """4x4 grid of the most confident mistakes (fewer cells when there are fewer mistakes);
    with ``explain``, each overlaid with the heatmap of the class it was mistaken for."""
    errors = most_confident_errors(predictions)
    images = [model.load_image(p["path"]) for p in errors]
    captions = [f"true {p['true']}\npred {p['predicted']} ({p['confidence']:.2f})" for p in errors]
    title = "Most confident mistakes" if errors else "No mistakes"
    if explain and errors:
        from ..serve.heatmaps import Explainer, overlay

        explainer = Explainer(model)
        predicted = [model.class_names.index(p["predicted"]) for p in errors]
        maps = explainer.heatmaps(np.stack(images), predicted)
        images = [overlay(image, heat) for image, heat in zip(images, maps)]
        title += f"\nheatmap of the predicted class (Grad-CAM on {explainer.target.layer})"
    return plots.plot_image_grid(images, captions, path, title=title)


def _f1_coverage(result: EvalResult) -> list[str]:
    """Which classes the macro F1 averages, said when they are not simply all of them."""
    absent = [n for n in result.class_names if n not in result.present_classes]
    if not absent:
        return []
    lines = [
        f"  macro F1 averages the {len(result.f1_classes)} classes in the labels or predictions "
        f"({', '.join(result.f1_classes)})"
    ]
    if result.f1_classes != result.present_classes:
        lines.append(
            f"  macro F1 over the {len(result.present_classes)} classes present in the labels: "
            f"{result.macro_f1_present:.4f} (no images of: {', '.join(absent)})"
        )
    else:
        lines[0] += f"; no images of: {', '.join(absent)}"
    return lines


def format_result(result: EvalResult) -> str:
    width = max(9, *(len(n) for n in result.class_names))
    lines = [
        f"evaluated {result.num_images} images from {result.source}"
        + (" (TTA: image + horizontal flip)" if result.tta else ""),
        f"top-1 accuracy {result.accuracy:.4f}   balanced accuracy "
        f"{result.balanced_accuracy:.4f}   macro F1 {result.macro_f1:.4f}",
        *_f1_coverage(result),
        "",
        f"{'class':<{width}} {'precision':>9} {'recall':>9} {'F1':>9} {'support':>8}",
    ]
    for name, m in result.per_class.items():
        lines.append(
            f"{name:<{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} "
            f"{m['support']:>8d}"
        )
    lines.append(
        f"calibration: expected calibration error {result.ece:.4f} "
        + (
            f"(temperature {result.temperature:.2f}; {result.ece_uncalibrated:.4f} without it)"
            if result.temperature != 1.0
            else "(not temperature-scaled)"
        )
    )
    if result.accepted_share is not None:
        lines.append(
            f"accepted as one of the known classes: {result.accepted_share:.1%} of the images"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    # Columns as wide as the longest name: a name cut to seven letters can be two classes.
    cell = max(7, *(len(n) for n in result.class_names))
    lines.append(f"{'':<{width}} " + " ".join(f"{n:>{cell}}" for n in result.class_names))
    for name, row in zip(result.class_names, result.confusion):
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines + leakage_lines(result.leakage or {}) + closing_lines(result))


def closing_lines(result) -> list[str]:
    """The end of what evaluate prints: the files it skipped, and where it wrote."""
    lines = []
    if result.skipped:
        lines += ["", f"skipped {plural(len(result.skipped), 'unreadable file')}:"]
        lines += [f"  {path}: {error}" for path, error in sorted(result.skipped.items())]
    if result.out_dir is not None:
        lines += ["", f"results written to {result.out_dir}"]
    return lines
