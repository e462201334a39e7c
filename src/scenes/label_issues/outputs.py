"""The files ``scenes data issues`` writes: the ranked suspects (usable as ``data.exclude``),
every image's label quality, a grid of the top suspects, and a one-paragraph summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import replacing
from ..console import plural
from ..csvfile import SafeWriter
from .ranking import LabelIssues

GRID_COLUMNS = 5  # the figure shows the top GRID_COLUMNS**2 suspects
ISSUES_CSV = "label_issues.csv"
QUALITY_CSV = "label_quality.csv"
GRID_PNG = "label_issues.png"
SUMMARY_MD = "summary.md"


def write_issues_csv(issues: LabelIssues, indices: np.ndarray, path: Path) -> Path:
    """path, given, suggested, score: the file ``data.exclude`` reads (its path column)."""
    names, suggested = issues.class_names, issues.suggested
    with replacing(path) as fh:
        writer = SafeWriter(fh)
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
    with replacing(path) as fh:
        writer = SafeWriter(fh)
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
    from ..plots import plot_image_grid

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
        [issues.preprocess.load(issues.paths[i]) for i in shown],
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
        text += f" {plural(len(issues.skipped), 'unreadable file')} skipped."
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
