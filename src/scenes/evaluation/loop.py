"""``scenes evaluate``: measure a trained bundle on a labelled folder or its validation split.

The training split is never read: ``--data`` resolves to a test folder (or a bare folder of
classes), and ``--split val`` reads only the validation rows of the run's ``split.csv``.
Metrics come from ``metrics.py`` (torchmetrics, as in training); the files written and the
text printed come from ``outputs.py``; what is read, from ``sources.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from ..choices import INFERENCE_BATCH
from ..config import default_cache_dir
from ..console import stage
from ..errors import DataError, UsageError
from ..metrics import compute_metrics, expected_calibration_error
from ..models.bundle import bundle_run_dir
from ..models.probabilities import softmax
from ..outputs import output_dir
from ..serve.answers import Answers
from ..serve.decoding import decoded_batches
from ..serve.predictor import Predictor
from ..serve.ray_jobs import RayEngine, engine_from_options
from .leakage import leakage_summary
from .multilabel import (
    MultilabelResult,
    format_multilabel,
    multilabel_result,
    write_multilabel_outputs,
)
from .outputs import EvalResult, format_result, write_outputs
from .sources import default_eval_dir, evaluation_files


def predict_files(
    model: Predictor, paths: list[Path], tta: bool, batch_size: int
) -> tuple[np.ndarray, np.ndarray | None, list[int], dict[str, str]]:
    """Logits of the readable files (and their features, when the model's acceptance needs
    them), their indices in ``paths``, and the unreadable ones."""
    chunks, feature_chunks, kept, skipped = [], [], [], {}
    with stage("evaluating", len(paths)) as bar:
        for start, (batch, pixels, ok, errors) in zip(
            range(0, len(paths), batch_size), decoded_batches(model.load_images, paths, batch_size)
        ):
            for i, message in errors.items():
                skipped[str(batch[i])] = message
            if ok:
                logits, features = model.forward(pixels, tta=tta)
                chunks.append(logits)
                if features is not None:
                    feature_chunks.append(features)
                kept.extend(start + i for i in ok)
            bar.update(len(batch))
    empty = np.empty((0, len(model.class_names)), np.float32)
    logits = np.concatenate(chunks) if chunks else empty
    features = np.concatenate(feature_chunks) if feature_chunks else None
    return logits, features, kept, skipped


def check_evaluate_options(data, split, labels_csv, batch_size: int) -> None:
    if sum(x is not None for x in (data, split, labels_csv)) != 1:
        raise UsageError(
            "evaluate needs one of data (a labelled folder), labels_csv (a multi-label model's "
            "path,labels CSV) or split='val'"
        )
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")


def evaluation_logits(
    model: Predictor,
    run: str | Path,
    paths: list[Path],
    tta: bool,
    batch_size: int,
    engine: RayEngine | None,
    backend: str,
    device: str,
    accept_all: bool,
) -> tuple[np.ndarray, np.ndarray | None, list[int], dict[str, str]]:
    """``predict_files`` in this process, or the same numbers from a pool of Ray workers."""
    if engine is None:
        return predict_files(model, paths, tta, batch_size)
    from ..serve.ray_logits_features import logits_with_ray

    return logits_with_ray(run, paths, backend, device, accept_all, tta, batch_size, engine)


def accepted_share(found: Answers, model: Predictor) -> float | None:
    """Share of images the model's acceptance check lets through (None without one)."""
    if found.scores is None:
        return None
    return float(np.mean(found.scores <= model.meta.acceptance.threshold))


def single_label_result(
    found: Answers,
    logits: np.ndarray,
    paths: list[Path],
    y_true: list[int],
    model: Predictor,
    accepted: float | None,
    **context,
) -> EvalResult:
    """Metrics, calibration and per-image rows of a single-label model; ``context`` is
    source, tta and skipped, as EvalResult names them."""
    probs = found.probs
    y_pred = probs.argmax(axis=1).tolist()
    metrics = compute_metrics(y_true, y_pred, model.class_names)
    metrics.update(calibration_metrics(logits, probs, y_true, model.meta.temperature))
    metrics["accepted_share"] = accepted
    return EvalResult(
        **metrics,
        class_names=list(model.class_names),
        predictions=_prediction_rows(paths, y_true, found),
        out_dir=None,
        logits=logits,
        probs=probs,
        **context,
    )


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
    accept_all: bool = False,
    labels_csv: str | Path | None = None,
    engine: RayEngine | None = None,
    leakage: bool = False,
) -> EvalResult | MultilabelResult:
    """Evaluate the bundle of ``run`` on ``data`` (a labelled folder) or on its ``split``.

    Writes metrics.json, per_class.csv, confusion_matrix.{csv,png}, predictions.csv and
    errors.png to ``out`` (default RUN/eval/<data-name> or RUN/eval/<split>); ``out=False``
    writes nothing. With ``explain`` the error grid shows the Grad-CAM heatmap of the
    predicted class over each image. With ``engine`` the logits come from a pool of Ray
    workers (the same numbers); the metrics and files are this process's. With ``leakage``
    the images are checked against the run's training images (``evaluation/leakage.py``).
    """
    check_evaluate_options(data, split, labels_csv, batch_size)
    if out:
        output_dir(out)
    model = Predictor.load(run, backend=backend, device=device, accept_all=accept_all)
    run_dir = bundle_run_dir(run)
    paths, labels, source, name = evaluation_files(model, run_dir, data, labels_csv, split)
    logits, features, kept, skipped = evaluation_logits(
        model, run, paths, tta, batch_size, engine, backend, device, accept_all
    )
    if not kept:
        raise DataError(f"no readable images in {source} ({len(skipped)} unreadable)")
    y_true = [labels[i] for i in kept]
    kept_paths = [paths[i] for i in kept]
    found = Answers.of(model.meta, logits, features, model.reference)  # as every path answers
    accepted = accepted_share(found, model)
    context = {"source": source, "tta": tta, "skipped": skipped}
    out_dir = None
    if out is not False:
        out_dir = Path(out) if out else default_eval_dir(run_dir, name, source, tta)
    if model.meta.task == "multilabel":
        result = multilabel_result(
            found, np.asarray(y_true), kept_paths, logits, accepted_share=accepted, **context
        )
        if out_dir is not None:
            result.out_dir = write_multilabel_outputs(result, model, out_dir)
        return result
    result = single_label_result(found, logits, kept_paths, y_true, model, accepted, **context)
    if leakage:
        result.leakage = leakage_summary(run_dir, result.predictions, default_cache_dir())
    if out_dir is not None:
        result.out_dir = write_outputs(result, model, out_dir, explain=explain)
    return result


def _prediction_rows(paths: list[Path], y_true: list[int], found: Answers) -> list[dict]:
    names = found.meta.class_names
    rows = []
    for i, (path, true) in enumerate(zip(paths, y_true)):
        top3 = found.prediction(i, 3)  # ranked, and accepted or not, as predict says
        rows.append(
            {
                "path": str(path),
                "true": names[true],
                "predicted": top3[0][0],
                "confidence": top3[0][1],
                "top3": list(top3),
                "accepted": top3.accepted,
            }
        )
    return rows


def calibration_metrics(
    logits: np.ndarray, probs: np.ndarray, y_true: list[int], temperature: float
) -> dict:
    """Expected calibration error of the probabilities served, and of the raw softmax (the
    same without the bundle's temperature)."""
    return {
        "temperature": temperature,
        "ece": expected_calibration_error(probs, y_true),
        "ece_uncalibrated": expected_calibration_error(softmax(logits), y_true),
    }


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
    accept_all: bool = False,
    labels: str | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    leakage_check: bool = True,
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
        accept_all=accept_all,
        labels_csv=labels,
        engine=engine_from_options(engine, address, workers, gpus_per_worker),
        leakage=leakage_check,
    )
    print(
        format_multilabel(result) if isinstance(result, MultilabelResult) else format_result(result)
    )
    return 0
