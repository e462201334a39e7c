"""``scenes data issues``: training images whose label disagrees with what they show, ranked.

``issue_ranking`` computes the ranking (cross-validated heads on backbone features, then
cleanlab); ``issue_outputs`` writes it down. This module picks the backbone and the files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..choices import DEFAULT_RANKING_METHOD, INFERENCE_BATCH
from ..data.discover import find_layout, list_labelled_files
from ..errors import TRAIN_WEIGHTS_FIXES, UsageError, WeightsUnavailableError
from ..models.bundle import bundle_run_dir
from ..outputs import output_dir
from ..rundir import RunDir
from ..serve.ray_jobs import engine_from_options
from .outputs import summarize, write_outputs
from .ranking import check_folds, find_issues


def in_sample_note(run: str | Path, paths: list[Path]) -> str:
    """How many of ``paths`` trained the run's model (its split.csv), said plainly."""
    run_dir = RunDir(bundle_run_dir(run))
    if not run_dir.split_csv.is_file():
        return ""
    trained = {row.path.resolve() for row in run_dir.read_split() if row.split == "train"}
    overlap = sum(Path(p).resolve() in trained for p in paths)
    if not overlap:
        return ""
    return (
        f"Caution: {overlap:,} of these images trained this run's model, so their features "
        "are in-sample: the fine-tuned backbone learned their given labels, right or wrong, "
        "and their errors look less suspicious. For the run's own training images use the "
        "pretrained backbone (no --run)."
    )


def default_out_dir(root: Path, run: str | None) -> Path:
    name = root.resolve().name or "data"
    if run is not None:
        return RunDir(bundle_run_dir(run)).label_issues / name
    return Path(RunDir(".").label_issues.name) / name


ISSUES_WEIGHTS_FIXES = (
    "or start from a local state-dict file (--set model.weights_file=FILE), or use the "
    "fine-tuned backbone of a trained run (--run RUN_DIR)."
)
# With --run the backbone, its input size and preprocessing are the run's own (model.json).
RUN_DEFINES = ("model.", "data.image_size", "data.resize")


def check_run_options(config_path: str | None, sets: list[str]) -> None:
    """--run takes the model and its input size from the run: a recipe or --set naming them
    would be silently ignored, so they are refused (seed and data.cache_dir still apply)."""
    if config_path is not None:
        raise UsageError(
            "--run and --config: the run's bundle decides the backbone and its input size, so "
            "the recipe would be ignored; pass one of them (with --run, --set seed=N still applies)"
        )
    ignored = [s for s in sets if s.split("=", 1)[0].strip().startswith(RUN_DEFINES)]
    if ignored:
        raise UsageError(
            f"--run and --set {ignored[0]}: with --run the model and its input size are the "
            "run's own; leave out --set model.* and data.image_size"
        )


def check_counts(top: int, batch_size: int) -> None:
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")


def choose_backbone(cfg, run: str | None, class_names: list[str]):
    """The run's fine-tuned backbone with --run, else the recipe's pretrained one."""
    from ..models.features import pretrained_backbone, run_backbone

    if run is not None:
        return run_backbone(run)
    if not cfg.model.pretrained and cfg.model.weights_file is None:
        raise UsageError(
            "model.pretrained=false: a randomly initialised backbone gives meaningless "
            "features; use pretrained weights, model.weights_file, or --run RUN_DIR"
        )
    try:
        return pretrained_backbone(
            cfg.model.name,
            cfg.model.weights,
            cfg.model.weights_file,
            cfg.data.image_size,
            class_names,
            cfg.model.channels_last,
            cfg.model.weights_dir,
            cfg.data.resize,
        )
    except WeightsUnavailableError as exc:  # say this command's options, not train's
        raise WeightsUnavailableError(
            str(exc).replace(TRAIN_WEIGHTS_FIXES, ISSUES_WEIGHTS_FIXES)
        ) from None


def ray_features(ray_predict, backbone, batch_size: int, device: str):
    """Feature extraction spread over Ray workers, or None to compute in this process."""
    if ray_predict is None:
        return None
    from ..serve.ray_logits_features import features_with_ray

    def compute(paths: list[Path]):
        return features_with_ray(paths, backbone, batch_size, device, ray_predict)

    return compute


def print_report(summary: str, written: dict, shown: int) -> None:
    print(summary)
    print(
        f"\nwrote {written['issues']} (the {shown} most likely errors), "
        f"{written['quality']} (every image), {written['grid']}, {written['summary']}\n"
        f"to leave the listed images out of training: review {written['issues']} (delete rows "
        f"you want to keep), then train with --set data.exclude={written['issues']}",
        file=sys.stdout,
    )


def run_issues(
    directory: str,
    run: str | None = None,
    config_path: str | None = None,
    model: str | None = None,
    sets: list[str] | None = None,
    folds: int = 5,
    top: int = 100,
    method: str = DEFAULT_RANKING_METHOD,
    out: str | None = None,
    batch_size: int = INFERENCE_BATCH,
    device: str = "auto",
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
) -> int:
    """``scenes data issues``: write label_issues.csv, label_quality.csv, the grid, a summary."""
    from ..config import load_config

    check_counts(top, batch_size)
    if run is not None:
        check_run_options(config_path, sets or [])
    ray_predict = engine_from_options(engine, address, workers, gpus_per_worker)
    cfg = load_config(config_path, {"model.name": model} if model else None, sets)
    if out is not None:
        output_dir(out)
    layout = find_layout(directory)
    files = list_labelled_files(layout.train_dir)
    check_folds(np.asarray(files.labels), files.class_names, folds)
    backbone = choose_backbone(cfg, run, files.class_names)
    compute = ray_features(ray_predict, backbone, batch_size, device)
    issues = find_issues(
        files,
        backbone,
        cfg.resolved_cache_dir(),
        folds,
        cfg.seed,
        method,
        batch_size,
        True,
        device,
        compute,
    )
    note = in_sample_note(run, issues.paths) if run is not None else ""
    summary = summarize(issues, top, str(layout.train_dir), note)
    out_dir = Path(out) if out else default_out_dir(layout.root, run)
    written = write_outputs(issues, out_dir, top, summary)
    print_report(summary, written, min(top, len(issues.ranked)))
    return 0
