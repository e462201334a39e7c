"""``scenes evaluate``: measure a trained bundle on a labelled folder or its validation split.

The training split is never read: ``--data`` resolves to a test folder (or a bare folder of
classes), and ``--split val`` reads only the validation rows of the run's ``split.csv``.
Metrics come from ``metrics.py`` (torchmetrics, as in training); the files written and the
text printed come from ``eval_outputs.py``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Literal

import numpy as np

from ..choices import INFERENCE_BATCH, SPLITS
from ..console import stage
from ..data.discover import find_layout, list_labelled_files
from ..errors import DataError, UsageError
from ..metrics import compute_metrics
from ..models.bundle import bundle_run_dir
from ..outputs import output_dir
from ..rundir import SPLIT_FILE, RunDir
from ..serve.answers import best_classes, softmax
from ..serve.predictor import Predictor
from .outputs import METRICS_JSON, EvalResult, format_result, write_outputs


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
        raise UsageError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels = [], []
    for row in RunDir(run_dir).read_split():
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
) -> tuple[np.ndarray, list[int], dict[str, str]]:
    """Logits of the readable files, their indices in ``paths``, and the unreadable ones."""
    chunks, kept, skipped = [], [], {}
    with stage("evaluating", len(paths)) as bar:
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            pixels, ok, errors = model.load_images(batch)
            for i, message in errors.items():
                skipped[str(batch[i])] = message
            if ok:
                chunks.append(model.logits(pixels, tta=tta))
                kept.extend(start + i for i in ok)
            bar.update(len(batch))
    empty = np.empty((0, len(model.class_names)), np.float32)
    logits = np.concatenate(chunks) if chunks else empty
    return logits, kept, skipped


def evaluate(
    run: str | Path,
    data: str | Path | None = None,
    tta: bool = False,
    out: str | Path | Literal[False] | None = None,
    batch_size: int = INFERENCE_BATCH,
    split: str | None = None,
    device: str = "auto",
    explain: bool = False,
    backend: str = "torch",
) -> EvalResult:
    """Evaluate the bundle of ``run`` on ``data`` (a labelled folder) or on its ``split``.

    Writes metrics.json, per_class.csv, confusion_matrix.{csv,png}, predictions.csv and
    errors.png to ``out`` (default RUN/eval/<data-name> or RUN/eval/<split>); ``out=False``
    writes nothing. With ``explain`` the error grid shows the Grad-CAM heatmap of the
    predicted class over each image.
    """
    if (data is None) == (split is None):
        raise UsageError("evaluate needs exactly one of data (a labelled folder) or split='val'")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    if out:
        output_dir(out)
    model = Predictor.load(run, backend=backend, device=device)
    names = model.class_names
    run_dir = bundle_run_dir(run)
    if split is not None:
        paths, labels = split_files(run_dir, split, names)
        source, name = f"{RunDir(run_dir).split_csv.resolve()}:{split}", split
    else:
        folder = evaluation_folder(data)
        files = list_labelled_files(folder, names)
        paths, labels = files.paths, files.labels
        source, name = str(folder.resolve()), folder.resolve().name

    logits, kept, skipped = predict_files(model, paths, tta, batch_size)
    if not kept:
        raise DataError(f"no readable images in {source} ({len(skipped)} unreadable)")
    y_true = [labels[i] for i in kept]
    probs = softmax(logits)  # the one softmax every path reports
    y_pred = probs.argmax(axis=1).tolist()
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
        out_dir = Path(out) if out else default_eval_dir(run_dir, name, source, tta)
        result.out_dir = write_outputs(result, model, out_dir, explain=explain)
    return result


def default_eval_dir(run_dir: Path, name: str, source: str, tta: bool) -> Path:
    """``RUN/eval/<name>`` (``-tta`` with TTA): the folder of an earlier evaluation of the same
    source is reused; one of another source with the same name (two folders called ``test``)
    is never overwritten, the new one is numbered instead."""
    base = f"{name}-tta" if tta else name
    for n in itertools.count(1):
        candidate = RunDir(run_dir).eval / (base if n == 1 else f"{base}-{n}")
        metrics = candidate / METRICS_JSON
        if not candidate.exists():
            return candidate
        if metrics.is_file() and _source_of(metrics) == source:
            return candidate
    raise AssertionError("unreachable")


def _source_of(metrics_json: Path) -> str | None:
    try:
        return json.loads(metrics_json.read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None


def _prediction_rows(
    paths: list[Path], y_true: list[int], probs: np.ndarray, names: list[str]
) -> list[dict]:
    rows = []
    for path, true, row in zip(paths, y_true, probs):
        top3 = best_classes(row, names, 3)  # ranked as predict ranks them
        rows.append(
            {
                "path": str(path),
                "true": names[true],
                "predicted": top3[0][0],
                "confidence": top3[0][1],
                "top3": top3,
            }
        )
    return rows


def run_evaluate(
    run: str,
    data: str | None,
    tta: bool,
    out: str | None,
    batch_size: int,
    split: str | None = None,
    device: str = "auto",
    explain: bool = False,
    backend: str = "torch",
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
        backend=backend,
    )
    print(format_result(result))
    return 0
