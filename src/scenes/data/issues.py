"""``scenes data issues``: training images whose label disagrees with what they show, ranked.

Every image gets out-of-sample class probabilities from a logistic-regression head on frozen
backbone features, k-fold cross-validated: no image is scored by a head that was fitted on its
own label. cleanlab's confident learning then flags the images whose given label is unlikely
under those probabilities and ranks them, most likely errors first (self-confidence, the
predicted probability of the given label, ranked the planted and the real errors best of
cleanlab's scores here: see the README).
"""

from __future__ import annotations

import csv
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .discover import DataError, LabelledFiles, find_layout, list_labelled_files
from .features import Backbone, image_features

METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_METHOD = "self_confidence"
# Inverse L2 strength of the head on standardised features. On the Intel features 1e-3 caught
# the most planted flips (README, Results), also on small folders, within 0.2 points of the best
# cross-validated accuracy; weaker priors overfit (C=1: 88.6%) and fit slower.
HEAD_C = 1e-3
GRID_COLUMNS = 5  # the figure shows the top GRID_COLUMNS**2 suspects

ISSUES_CSV = "label_issues.csv"
QUALITY_CSV = "label_quality.csv"
GRID_PNG = "label_issues.png"
SUMMARY_MD = "summary.md"


@dataclass
class LabelIssues:
    """Out-of-sample probabilities of every readable image and cleanlab's verdict on them."""

    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    pred_probs: np.ndarray  # (N, K), each row from the head that did not see that image
    scores: np.ndarray  # label quality in [0, 1]: low means the given label is unlikely
    ranked: np.ndarray  # indices of the flagged images, most likely label errors first
    method: str
    folds: int
    backbone: str
    skipped: dict[str, str]
    image_size: int = 150  # the backbone's input size and resampling (for the figure)
    interpolation: str = "bilinear"

    @property
    def suggested(self) -> np.ndarray:
        return self.pred_probs.argmax(axis=1)

    @property
    def cv_accuracy(self) -> float:
        """Top-1 accuracy of the cross-validated head against the given labels."""
        return float((self.suggested == self.labels).mean())

    def pair_counts(self, indices: np.ndarray) -> Counter:
        """(given, suggested) class names -> number of images among ``indices``."""
        names = self.class_names
        return Counter(
            (names[self.labels[i]], names[self.suggested[i]]) for i in np.asarray(indices)
        )


def check_folds(labels: np.ndarray, class_names: list[str], folds: int) -> None:
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    counts = np.bincount(labels, minlength=len(class_names))
    small = [f"{class_names[k]} ({n})" for k, n in enumerate(counts) if n < folds]
    if small:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {folds} images per class; "
            f"too few in: {', '.join(small)}. Use a smaller --folds or add images"
        )


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    folds: int = 5,
    seed: int = 42,
    groups: list[str] | None = None,
    num_classes: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(N, K) probabilities, row i from a head fitted on the folds that do not hold image i.

    ``groups`` (content digests) keep identical files in the same fold: a copy in the
    training folds would make its twin look in-sample.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    num_classes = num_classes or int(labels.max()) + 1
    groups = groups if groups is not None else list(range(len(labels)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    splits = list(splitter.split(features, labels, groups))
    # One BLAS thread: these matrices are small, and threads fighting over shared cores made
    # each fit ~10x slower on the development machine.
    with threadpool_limits(limits=1, user_api="blas"):
        for fit_rows, held_out in tqdm(
            splits, desc="cross-validating heads", unit="fold", disable=not progress
        ):
            head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, tol=1e-3))
            with warnings.catch_warnings():
                # A not fully converged fit still gives usable probabilities for ranking.
                warnings.filterwarnings("ignore", ".*failed to converge.*")
                head.fit(features[fit_rows], labels[fit_rows])
            probs[np.ix_(held_out, head.classes_)] = head.predict_proba(features[held_out])
    return probs


def rank_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, method: str = DEFAULT_METHOD
) -> tuple[np.ndarray, np.ndarray]:
    """(indices flagged by cleanlab, most likely errors first; label quality of every image)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if method not in METHODS:
        raise ValueError(f"unknown ranking method {method!r}; choose from {', '.join(METHODS)}")
    ranked = find_label_issues(labels, pred_probs, return_indices_ranked_by=method, n_jobs=1)
    scores = get_label_quality_scores(labels, pred_probs, method=method)
    return np.asarray(ranked, dtype=np.int64), scores


def find_issues(
    files: LabelledFiles,
    backbone: Backbone,
    cache_dir: Path | None,
    folds: int = 5,
    seed: int = 42,
    method: str = DEFAULT_METHOD,
    batch_size: int = 64,
    progress: bool = True,
) -> LabelIssues:
    """Features (cached) -> cross-validated probabilities -> cleanlab ranking."""
    if method not in METHODS:
        raise ValueError(f"unknown ranking method {method!r}; choose from {', '.join(METHODS)}")
    check_folds(np.asarray(files.labels), files.class_names, folds)
    feats = image_features(files.paths, backbone, cache_dir, batch_size, progress)
    if len(feats.kept) == 0:
        raise DataError("no readable images to rank")
    labels = np.asarray(files.labels)[feats.kept]
    check_folds(labels, files.class_names, folds)  # unreadable files may leave a class short
    probs = out_of_sample_probabilities(
        feats.features,
        labels,
        folds,
        seed,
        groups=feats.digests,
        num_classes=len(files.class_names),
        progress=progress,
    )
    ranked, scores = rank_label_issues(labels, probs, method)
    return LabelIssues(
        paths=[files.paths[i] for i in feats.kept],
        labels=labels,
        class_names=list(files.class_names),
        pred_probs=probs,
        scores=scores,
        ranked=ranked,
        method=method,
        folds=folds,
        backbone=backbone.description,
        skipped=feats.failed,
        image_size=backbone.image_size,
        interpolation=backbone.interpolation,
    )


def write_issues_csv(issues: LabelIssues, indices: np.ndarray, path: Path) -> Path:
    """path, given, suggested, score: the file ``data.exclude`` reads (its path column)."""
    names, suggested = issues.class_names, issues.suggested
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "given", "suggested", "score"])
        for i in indices:
            writer.writerow(
                [
                    str(Path(issues.paths[i]).absolute()),
                    names[issues.labels[i]],
                    names[suggested[i]],
                    f"{issues.scores[i]:.6f}",
                ]
            )
    return path


def write_quality_csv(issues: LabelIssues, path: Path) -> Path:
    """Every image: its label quality, cleanlab's rank when flagged, and all probabilities."""
    names, suggested = issues.class_names, issues.suggested
    rank = {int(i): r + 1 for r, i in enumerate(issues.ranked)}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "given", "suggested", "score", "rank", *names])
        for i, p in enumerate(issues.paths):
            writer.writerow(
                [
                    str(Path(p).absolute()),
                    names[issues.labels[i]],
                    names[suggested[i]],
                    f"{issues.scores[i]:.6f}",
                    rank.get(i, ""),
                    *(f"{v:.6f}" for v in issues.pred_probs[i]),
                ]
            )
    return path


def write_grid(issues: LabelIssues, indices: np.ndarray, path: Path) -> Path:
    from ..figures import plot_image_grid
    from .images import load_image

    shown = np.asarray(indices)[: GRID_COLUMNS**2]
    names, suggested = issues.class_names, issues.suggested
    captions = [
        f"{names[issues.labels[i]]} → {names[suggested[i]]}\n{issues.scores[i]:.3f}" for i in shown
    ]
    title = (
        f"Top {len(shown)} label-issue suspects: given → suggested (label quality)"
        if len(shown)
        else "No label issues found"
    )
    return plot_image_grid(
        [load_image(issues.paths[i], issues.image_size, issues.interpolation) for i in shown],
        captions,
        path,
        title=title,
        columns=GRID_COLUMNS,
    )


def summarize(issues: LabelIssues, top: int, source: str, note: str = "") -> str:
    """One paragraph: what was computed, how many were flagged, by class pair."""
    n, flagged = len(issues.paths), len(issues.ranked)
    listed = issues.ranked[:top]
    text = (
        f"{n:,} labelled images in {source} ({len(issues.class_names)} classes). "
        f"Out-of-sample probabilities: a logistic-regression head on the frozen features of "
        f"{issues.backbone}, {issues.folds}-fold cross-validated "
        f"(its accuracy against the given labels: {issues.cv_accuracy:.1%}). "
        f"cleanlab flags {flagged:,} images ({flagged / max(n, 1):.1%}) as likely label "
        f"errors, ranked by {issues.method}; the {len(listed)} most likely are in {ISSUES_CSV}."
    )
    if flagged:
        in_listed, in_flagged = issues.pair_counts(listed), issues.pair_counts(issues.ranked)
        pairs = [
            f"{given} → {suggested} {count}"
            + (f" ({in_flagged[given, suggested]} flagged)" if flagged > len(listed) else "")
            for (given, suggested), count in in_listed.most_common()
        ]
        text += f" Listed, by given → suggested label: {', '.join(pairs)}."
    if issues.skipped:
        text += f" {len(issues.skipped)} unreadable file(s) skipped."
    return text + (f" {note}" if note else "")


def write_outputs(issues: LabelIssues, out_dir: Path, top: int, summary: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    listed = issues.ranked[:top]
    written = {
        "issues": write_issues_csv(issues, listed, out_dir / ISSUES_CSV),
        "quality": write_quality_csv(issues, out_dir / QUALITY_CSV),
        "grid": write_grid(issues, listed, out_dir / GRID_PNG),
        "summary": out_dir / SUMMARY_MD,
    }
    written["summary"].write_text(f"# Label issues\n\n{summary}\n\n![top suspects]({GRID_PNG})\n")
    return written


def in_sample_note(run: str | Path, paths: list[Path]) -> str:
    """How many of ``paths`` trained the run's model (its split.csv), said plainly."""
    from ..models.bundle import resolve_bundle_dir

    bundle = resolve_bundle_dir(run)
    split_csv = (bundle.parent if bundle.name == "model" else bundle) / "split.csv"
    if not split_csv.is_file():
        return ""
    with split_csv.open(newline="") as fh:
        trained = {Path(r["path"]).resolve() for r in csv.DictReader(fh) if r["split"] == "train"}
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
        from ..models.bundle import resolve_bundle_dir

        bundle = resolve_bundle_dir(run)
        run_dir = bundle.parent if bundle.name == "model" else bundle
        return run_dir / "label_issues" / name
    return Path("label_issues") / name


def run_issues(
    directory: str,
    run: str | None = None,
    config_path: str | None = None,
    model: str | None = None,
    sets: list[str] | None = None,
    folds: int = 5,
    top: int = 100,
    method: str = DEFAULT_METHOD,
    out: str | None = None,
    batch_size: int = 64,
) -> int:
    """``scenes data issues``: write label_issues.csv, label_quality.csv, the grid, a summary."""
    from ..config import load_config
    from .features import pretrained_backbone, run_backbone

    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    cfg = load_config(config_path, {"model.name": model} if model else None, sets)
    layout = find_layout(directory)
    files = list_labelled_files(layout.train_dir)
    check_folds(np.asarray(files.labels), files.class_names, folds)
    if run is not None:
        backbone = run_backbone(run)
    else:
        if not cfg.model.pretrained and cfg.model.weights_file is None:
            raise ValueError(
                "model.pretrained=false: a randomly initialised backbone gives meaningless "
                "features; use pretrained weights, model.weights_file, or --run RUN_DIR"
            )
        backbone = pretrained_backbone(
            cfg.model.name,
            cfg.model.weights,
            cfg.model.weights_file,
            cfg.data.image_size,
            files.class_names,
            cfg.model.channels_last,
            cfg.model.weights_dir,
        )
    issues = find_issues(
        files, backbone, cfg.resolved_cache_dir(), folds, cfg.seed, method, batch_size
    )
    note = in_sample_note(run, issues.paths) if run is not None else ""
    summary = summarize(issues, top, str(layout.train_dir), note)
    out_dir = Path(out) if out else default_out_dir(layout.root, run)
    written = write_outputs(issues, out_dir, top, summary)
    print(summary)
    print(
        f"\nwrote {written['issues']} (the {min(top, len(issues.ranked))} most likely errors), "
        f"{written['quality']} (every image), {written['grid']}, {written['summary']}\n"
        f"to leave the listed images out of training: review {written['issues']} (delete rows "
        f"you want to keep), then train with --set data.exclude={written['issues']}",
        file=sys.stdout,
    )
    return 0
