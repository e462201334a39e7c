"""Figures as PNG files: bars, image grids, curves, a confusion matrix, an explanation panel.

Every command that draws (training, evaluate, explain, data issues) uses these; what each
figure shows and where it goes is decided by the caller. Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never
through pyplot: no GUI backend, no global figure state shared with the caller. Every figure
has a fixed size in inches and ``DPI``, so its PNG size in pixels is known in advance.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .atomic import replacing

log = logging.getLogger(__name__)

DPI = 100
# (width, height) in inches of each figure; pixels = inches * DPI.
SIZES = {
    "class_distribution": (8.0, 4.5),
    "image_grid": (8.0, 8.8),
    "augmentations": (12.0, 3.4),
    "training_curves": (13.0, 4.0),
    "confusion_matrix": (7.5, 6.5),
    "explanation": (11.0, 4.2),
    "reliability": (5.5, 5.0),
    "benchmark": (6.5, 4.8),
    "compare_curve": (7.0, 4.5),
    "compare_classes": (9.0, 4.5),
}

GRID_CELL = (2.0, 2.2)  # inches per image of a grid, its caption included


def pixel_size(kind: str) -> tuple[int, int]:
    """(width, height) in pixels of the PNG written for figure ``kind``."""
    width, height = SIZES[kind]
    return round(width * DPI), round(height * DPI)


def grid_shape(count: int, max_columns: int = 4) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` images: no wider than needed, so a few images
    are not lost in a mostly blank page."""
    columns = max(1, min(max_columns, math.ceil(math.sqrt(max(count, 1)))))
    return math.ceil(max(count, 1) / columns), columns


def grid_pixel_size(count: int, max_columns: int = 4) -> tuple[int, int]:
    rows, columns = grid_shape(count, max_columns)
    width, height = GRID_CELL[0] * columns, GRID_CELL[1] * rows + 0.6  # the title's line
    return round(max(width, 4.0) * DPI), round(height * DPI)


def _new_figure(kind: str, size: tuple[float, float] | None = None) -> Figure:
    fig = Figure(figsize=size or SIZES[kind], dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": it would change the pixel size from one figure to the next.
    with replacing(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=DPI, facecolor="white")
    return path


def plot_class_distribution(counts: dict[str, dict[str, int]], path: str | Path) -> Path:
    """Grouped bars: images per class, one bar per split (e.g. train / val)."""
    splits = list(counts)
    class_names = list(next(iter(counts.values()))) if counts else []
    fig = _new_figure("class_distribution")
    ax = fig.add_subplot()
    x = np.arange(len(class_names))
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        values = [counts[split].get(name, 0) for name in class_names]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, values, width, label=split)
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    if splits:
        ax.legend()
    return _save(fig, path)


def plot_image_grid(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | Path,
    title: str = "",
    columns: int = 4,
) -> Path:
    """Up to ``columns``**2 (H, W, 3) uint8 images with a caption under each, on a grid just
    large enough for them (``grid_shape``)."""
    shown = min(columns * columns, len(images))
    rows, cols = grid_shape(shown, columns)
    width, height = grid_pixel_size(shown, columns)
    fig = _new_figure("image_grid", (width / DPI, height / DPI))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < shown:
            ax.imshow(np.asarray(images[i]))
            ax.set_title(captions[i], fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_explanation(
    image: np.ndarray, heatmap: np.ndarray, blend: np.ndarray, title: str, path: str | Path
) -> Path:
    """Three panels: the photo as the model saw it, the heatmap (0..1, jet), their blend."""
    fig = _new_figure("explanation")
    axes = fig.subplots(1, 3)
    axes[0].imshow(np.asarray(image))
    axes[0].set_title("photo (model input)", fontsize=9)
    shown = axes[1].imshow(heatmap, cmap="jet", vmin=0.0, vmax=1.0)
    axes[1].set_title("class-activation map", fontsize=9)
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    axes[2].imshow(np.asarray(blend))
    axes[2].set_title("blend", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_reliability(
    before: np.ndarray, after: np.ndarray, labels, path: str | Path, temperature: float
) -> Path:
    """Accuracy against confidence (top class, 10 equal-width bins) of the raw softmax and of
    the probabilities served: on the diagonal, a confidence means what it says."""
    labels = np.asarray(labels)
    fig = _new_figure("reliability")
    ax = fig.add_subplot()
    edges = np.linspace(0.0, 1.0, 11)
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    curves = [("softmax", before, "o-")]
    if temperature != 1.0:
        curves.append((f"served (temperature {temperature:.2f})", after, "s-"))
    for name, probs, style in curves:
        confidence = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, 9)
        used = [b for b in range(10) if np.any(bins == b)]
        ax.plot(
            [confidence[bins == b].mean() for b in used],
            [correct[bins == b].mean() for b in used],
            style,
            label=name,
            markersize=4,
        )
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Reliability ({len(labels)} images)")
    return _save(fig, path)


def plot_training_curves(columns: dict[str, list[float]], path: str | Path) -> Path:
    """Loss, accuracy (mean average precision for multilabel runs) and macro F1 per epoch,
    train vs validation (``RunDir.metrics_by_column``)."""
    if not columns:
        raise ValueError("metrics.csv has no epochs to plot")
    epochs = columns["epoch"]
    fig = _new_figure("training_curves")
    axes = fig.subplots(1, 3)
    ranking = (
        ("map", "Mean average precision") if "val_map" in columns else ("acc", "Top-1 accuracy")
    )
    for ax, (metric, title) in zip(axes, (("loss", "Loss"), ranking, ("f1", "Macro F1"))):
        for split, style in (("train", "o-"), ("val", "s-")):
            key = f"{split}_{metric}"
            if key in columns:
                ax.plot(epochs, columns[key], style, label=split, markersize=4)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_compared_curves(
    runs: dict[str, tuple[list[float], list[float]]], metric: str, path: str | Path
) -> Path:
    """One metric per epoch, one line per run: ``{run: (epochs, values)}``."""
    fig = _new_figure("compare_curve")
    ax = fig.add_subplot()
    for name, (epochs, values) in runs.items():
        ax.plot(epochs, values, "o-", label=name, markersize=4)
    ax.set_title(metric.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_compared_classes(
    scores: dict[str, dict[str, float]], class_names: list[str], title: str, path: str | Path
) -> Path:
    """Grouped bars: one group per class, one bar per run (``{run: {class: F1}}``)."""
    fig = _new_figure("compare_classes")
    ax = fig.add_subplot()
    x = np.arange(len(class_names))
    width = 0.8 / max(1, len(scores))
    for i, (name, per_class) in enumerate(scores.items()):
        values = [per_class.get(c, np.nan) for c in class_names]
        ax.bar(x + (i - (len(scores) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    low = min((v for s in scores.values() for v in s.values()), default=0.0)
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: list[str], path: str | Path
) -> Path:
    """Counts in every cell; colour = share of the true class (row), so rare classes show too."""
    counts = np.asarray(confusion, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    fig = _new_figure("confusion_matrix")
    ax = fig.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(shown, ax=ax, label="share of true class")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), n in np.ndenumerate(counts):
        color = "white" if shares[row, col] > 0.5 else "black"
        ax.text(col, row, str(n), ha="center", va="center", color=color, fontsize=9)
    ax.set_title(f"Confusion matrix ({int(counts.sum())} images)")
    return _save(fig, path)


def draw_safely(figures_dir: Path, jobs) -> list[Path]:
    """Each ``(file name, draw(path))`` job into ``figures_dir``; a failure is logged as a
    warning and the others go on (a figure must never cost a finished run)."""
    written = []
    for name, draw in jobs:
        try:
            written.append(draw(figures_dir / name))
        except Exception as exc:  # a figure must never cost the user a finished training run
            log.warning("could not draw %s: %s: %s", figures_dir / name, type(exc).__name__, exc)
    return written


def plot_benchmark(
    names: list[str], latency_ms: list[float], scores: list[float], score: str, path: str | Path
) -> Path:
    """One point per format: single-image latency (p50) against accuracy on the user's data."""
    fig = _new_figure("benchmark")
    ax = fig.add_subplot()
    ax.scatter(latency_ms, scores, s=40, color="tab:blue", zorder=3)
    # Formats of equal accuracy sit on one line: alternate above and below, left to right,
    # so that neighbours' names do not overlap.
    by_latency = sorted(range(len(names)), key=lambda i: latency_ms[i])
    for rank, i in enumerate(by_latency):
        offset = (4, 6) if rank % 2 == 0 else (4, -13)
        ax.annotate(
            names[i],
            (latency_ms[i], scores[i]),
            textcoords="offset points",
            xytext=offset,
            fontsize=9,
        )
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.margins(x=0.12, y=0.25)
    ax.set_xlabel("single-image latency, p50 (ms, decoding included)")
    ax.set_ylabel(score)
    ax.grid(alpha=0.3)
    ax.set_title(f"Every format on the same images ({score} vs latency)")
    return _save(fig, path)
