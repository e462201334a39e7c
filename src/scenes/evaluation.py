"""``scenes evaluate``: measure a trained bundle on a labelled folder or its validation split.

The training split is never read: ``--data`` resolves to a test folder (or a bare folder of
classes), and ``--split val`` reads only the validation rows of the run's ``split.csv``.
Metrics come from torchmetrics; every file written goes to one eval folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from tqdm.auto import tqdm

from . import figures
from .data.discover import DataError, find_layout, list_labelled_files
from .inference import Predictor
from .models.bundle import resolve_bundle_dir
from .rundir import SPLIT_FILE, read_split

SPLITS = ("val",)
ERROR_GRID_SIZE = 16


@dataclass
class EvalResult:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    class_names: list[str]
    predictions: list[dict]  # path, true, predicted, confidence, top3 [(label, prob)]
    out_dir: Path | None
    source: str = ""  # the folder or split evaluated
    tta: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable path -> error
    logits: torch.Tensor | None = field(default=None, repr=False)

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
            "macro_f1": self.macro_f1,
            "class_names": self.class_names,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "skipped": self.skipped,
        }


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


def run_dir_of(run: str | Path) -> Path:
    """The run directory for a run dir or its ``model/`` bundle (where eval/ goes)."""
    bundle = resolve_bundle_dir(run)
    return bundle.parent if bundle.name == "model" else bundle


def evaluation_folder(data: str | Path) -> Path:
    """The folder of ``<class>/`` folders to evaluate, never a training folder.

    A dataset root with ``test/`` or ``seg_test/seg_test/`` means that test folder; a root
    with only a training folder is refused (use ``--split val`` for its held-out part).
    """
    layout = find_layout(data)
    if layout.name == "bare":
        return layout.root
    if layout.test_dir is None:
        raise DataError(
            f"{data} holds a training folder ({layout.train_dir}) and no test folder; "
            "evaluating on training images would overstate accuracy: pass a test folder "
            "with --data, or use --split val for the run's validation split"
        )
    return layout.test_dir


def split_files(run_dir: Path, split: str, class_names: list[str]) -> tuple[list[Path], list[int]]:
    """Paths and labels of one split listed in RUN/split.csv, labels matched by class name."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels = [], []
    for row in read_split(run_dir):
        if row.split != split:
            continue
        if row.label not in index:
            raise DataError(
                f"{run_dir / SPLIT_FILE}: label {row.label!r} is not a class of the model "
                f"({', '.join(class_names)})"
            )
        paths.append(row.path)
        labels.append(index[row.label])
    if not paths:
        raise DataError(f"{run_dir / SPLIT_FILE} lists no {split!r} images")
    return paths, labels


def predict_files(
    model: Predictor, paths: list[Path], tta: bool, batch_size: int
) -> tuple[torch.Tensor, list[int], dict[str, str]]:
    """Logits of the readable files, their indices in ``paths``, and the unreadable ones."""
    chunks, kept, skipped = [], [], {}
    starts = range(0, len(paths), batch_size)
    for start in tqdm(starts, desc="evaluating", unit="batch", disable=len(starts) < 4):
        batch = paths[start : start + batch_size]
        pixels, ok, errors = model.load_images(batch)
        for i, message in errors.items():
            skipped[str(batch[i])] = message
        if ok:
            chunks.append(model.logits(pixels, tta=tta))
            kept.extend(start + i for i in ok)
    logits = torch.cat(chunks) if chunks else torch.empty(0, len(model.class_names))
    return logits, kept, skipped


def evaluate(
    run: str | Path,
    data: str | Path | None = None,
    tta: bool = False,
    out: str | Path | Literal[False] | None = None,
    batch_size: int = 64,
    split: str | None = None,
    device: str = "auto",
    explain: bool = False,
) -> EvalResult:
    """Evaluate the bundle of ``run`` on ``data`` (a labelled folder) or on its ``split``.

    Writes metrics.json, per_class.csv, confusion_matrix.{csv,png}, predictions.csv and
    errors.png to ``out`` (default RUN/eval/<data-name> or RUN/eval/<split>); ``out=False``
    writes nothing. With ``explain`` the error grid shows the Grad-CAM heatmap of the
    predicted class over each image.
    """
    if (data is None) == (split is None):
        raise ValueError("evaluate needs exactly one of data (a labelled folder) or split='val'")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = Predictor.load(run, device=device)
    names = model.class_names
    if split is not None:
        run_dir = run_dir_of(run)
        paths, labels = split_files(run_dir, split, names)
        source, default_out = f"{run_dir / 'split.csv'}:{split}", run_dir / "eval" / split
    else:
        folder = evaluation_folder(data)
        files = list_labelled_files(folder, names)
        paths, labels = files.paths, files.labels
        source, default_out = str(folder), run_dir_of(run) / "eval" / folder.name

    logits, kept, skipped = predict_files(model, paths, tta, batch_size)
    if not kept:
        raise DataError(f"no readable images in {source} ({len(skipped)} unreadable)")
    y_true = [labels[i] for i in kept]
    probs = torch.softmax(logits, dim=1)
    y_pred = probs.argmax(dim=1).tolist()
    metrics = compute_metrics(y_true, y_pred, names)
    result = EvalResult(
        **metrics,
        class_names=list(names),
        predictions=_prediction_rows([paths[i] for i in kept], y_true, probs, names),
        out_dir=None,
        source=source,
        tta=tta,
        skipped=skipped,
        logits=logits,
    )
    if out is not False:
        result.out_dir = write_outputs(
            result, model, Path(out) if out else default_out, explain=explain
        )
    return result


def _prediction_rows(
    paths: list[Path], y_true: list[int], probs: torch.Tensor, names: list[str]
) -> list[dict]:
    top_p, top_i = probs.topk(min(3, len(names)), dim=1)
    rows = []
    for path, true, p_row, i_row in zip(paths, y_true, top_p.tolist(), top_i.tolist()):
        rows.append(
            {
                "path": str(path),
                "true": names[true],
                "predicted": names[i_row[0]],
                "confidence": p_row[0],
                "top3": [(names[i], p) for i, p in zip(i_row, p_row)],
            }
        )
    return rows


def most_confident_errors(predictions: list[dict], n: int = ERROR_GRID_SIZE) -> list[dict]:
    wrong = [p for p in predictions if p["predicted"] != p["true"]]
    return sorted(wrong, key=lambda p: p["confidence"], reverse=True)[:n]


def write_outputs(
    result: EvalResult, model: Predictor, out_dir: Path, explain: bool = False
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    with (out_dir / "per_class.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, m in result.per_class.items():
            writer.writerow([name, m["precision"], m["recall"], m["f1"], m["support"]])
    with (out_dir / "confusion_matrix.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true\\predicted", *result.class_names])
        for name, row in zip(result.class_names, result.confusion):
            writer.writerow([name, *row])
    with (out_dir / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "true", "predicted", "confidence", "top3"])
        for p in result.predictions:
            # repr() of a float round-trips: the confidence is kept at full precision.
            top3 = ";".join(f"{label}:{prob!r}" for label, prob in p["top3"])
            writer.writerow([p["path"], p["true"], p["predicted"], repr(p["confidence"]), top3])
    figures.plot_confusion_matrix(
        result.confusion, result.class_names, out_dir / figures.CONFUSION_MATRIX
    )
    write_error_grid(result.predictions, model, out_dir / figures.ERROR_GRID, explain)
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
        from .cam import Explainer, overlay

        explainer = Explainer(model)
        predicted = [model.class_names.index(p["predicted"]) for p in errors]
        maps = explainer.heatmaps(np.stack(images), predicted)
        images = [overlay(image, heat) for image, heat in zip(images, maps)]
        title += f"\nheatmap of the predicted class (Grad-CAM on {explainer.target.layer})"
    return figures.plot_image_grid(images, captions, path, title=title)


def format_result(result: EvalResult) -> str:
    width = max(9, *(len(n) for n in result.class_names))
    lines = [
        f"evaluated {result.num_images} images from {result.source}"
        + (" (TTA: image + horizontal flip)" if result.tta else ""),
        f"top-1 accuracy {result.accuracy:.4f}   macro F1 {result.macro_f1:.4f}",
        "",
        f"{'class':<{width}} {'precision':>9} {'recall':>9} {'F1':>9} {'support':>8}",
    ]
    for name, m in result.per_class.items():
        lines.append(
            f"{name:<{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} "
            f"{m['support']:>8d}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    short = [n[:7] for n in result.class_names]
    lines.append(f"{'':<{width}} " + " ".join(f"{s:>7}" for s in short))
    for name, row in zip(result.class_names, result.confusion):
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>7d}" for v in row))
    if result.skipped:
        lines += ["", f"skipped {len(result.skipped)} unreadable file(s):"]
        lines += [f"  {path}: {error}" for path, error in sorted(result.skipped.items())]
    if result.out_dir is not None:
        lines += ["", f"results written to {result.out_dir}"]
    return "\n".join(lines)


def run_evaluate(
    run: str,
    data: str | None,
    tta: bool,
    out: str | None,
    batch_size: int,
    split: str | None = None,
    device: str = "auto",
    explain: bool = False,
) -> int:
    result = evaluate(
        run,
        data=data,
        tta=tta,
        out=out,
        batch_size=batch_size,
        split=split,
        device=device,
        explain=explain,
    )
    print(format_result(result))
    return 0
