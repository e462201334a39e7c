"""Figures for a run: data overview, augmentation sheet, training curves, evaluation plots.

Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never
through pyplot: no GUI backend, no global figure state shared with the caller. Every figure
has a fixed size in inches and ``DPI``, so its PNG size in pixels is known in advance.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .rundir import RunDir

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
}

# File names inside RUN_DIR/figures/ (training) and the eval folder (evaluation).
CLASS_DISTRIBUTION = "class_distribution.png"
TRAINING_SAMPLES = "training_samples.png"
AUGMENTATIONS = "augmentations.png"
TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
ERROR_GRID = "errors.png"


def pixel_size(kind: str) -> tuple[int, int]:
    """(width, height) in pixels of the PNG written for figure ``kind``."""
    width, height = SIZES[kind]
    return round(width * DPI), round(height * DPI)


def _new_figure(kind: str) -> Figure:
    fig = Figure(figsize=SIZES[kind], dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": it would change the pixel size from one figure to the next.
    fig.savefig(path, dpi=DPI, facecolor="white")
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
    """Up to ``columns``**2 (H, W, 3) uint8 images with a caption under each."""
    cells = columns * columns
    fig = _new_figure("image_grid")
    axes = fig.subplots(columns, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < min(cells, len(images)):
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


def pick_samples(labels: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` samples, classes taking turns, so every class shows up."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(int(pool.pop()))
    return picked


def plot_training_samples(
    pixels, labels: np.ndarray, class_names: list[str], path: str | Path, seed: int = 0
) -> Path:
    """4x4 grid of training images (as decoded for the model), captioned with their labels."""
    chosen = pick_samples(labels, 16, seed)
    images = [pixels[i] for i in chosen]
    captions = [class_names[int(labels[i])] for i in chosen]
    return plot_image_grid(images, captions, path, title="Training images")


def augmentation_panels(
    image: np.ndarray, preset: str, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """(name, image) pairs: the original, then every operation of the training preset
    ``preset`` applied alone, at probability 1 (each panel shows what the operation does, not
    whether it happened to fire). Built from the preset's own steps, so the sheet cannot show
    an augmentation that training does not run."""
    from .data.batch_augment import batch_generator, make_batch_augment, to_uint8, to_unit_float

    batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0)
    panels = [("original", image)]
    for i, (name, op) in enumerate(make_batch_augment(preset).single_steps()):
        shown = to_uint8(op(to_unit_float(batch), batch_generator(seed, 0, i)))
        panels.append((name, shown[0].permute(1, 2, 0).numpy()))
    return panels


def plot_augmentations(image: np.ndarray, preset: str, path: str | Path, seed: int = 0) -> Path:
    panels = augmentation_panels(image, preset, seed)
    fig = _new_figure("augmentations")
    rows = 1 if len(panels) <= 8 else 2
    columns = math.ceil(len(panels) / rows)
    axes = fig.subplots(rows, columns, squeeze=False).flat
    for ax in axes:
        ax.set_axis_off()
    for ax, (name, shown) in zip(fig.axes, panels):
        ax.imshow(shown)
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"Augmentation preset '{preset}': each operation applied alone")
    return _save(fig, path)


def plot_training_curves(columns: dict[str, list[float]], path: str | Path) -> Path:
    """Loss, accuracy and macro F1 per epoch, train vs validation (``RunDir.metrics_columns``)."""
    if not columns:
        raise ValueError("metrics.csv has no epochs to plot")
    epochs = columns["epoch"]
    fig = _new_figure("training_curves")
    axes = fig.subplots(1, 3)
    for ax, (metric, title) in zip(
        axes, (("loss", "Loss"), ("acc", "Top-1 accuracy"), ("f1", "Macro F1"))
    ):
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


def write_data_figures(figures_dir: str | Path, data, preset: str, seed: int = 0) -> list[Path]:
    """Class distribution, training samples and augmentation sheet for a PreparedData.

    A figure is a by-product: a failure is logged as a warning and never stops training.
    """
    figures_dir = Path(figures_dir)
    jobs = [
        (CLASS_DISTRIBUTION, lambda p: plot_class_distribution(data.class_counts(), p)),
        (
            TRAINING_SAMPLES,
            lambda p: plot_training_samples(
                data.train.pixels, data.train.labels, data.class_names, p, seed
            ),
        ),
        (AUGMENTATIONS, lambda p: plot_augmentations(data.train.pixels[0], preset, p, seed)),
    ]
    return _run_safely(figures_dir, jobs)


def write_curve_figures(run_dir: RunDir) -> list[Path]:
    """Training curves from the run's metrics.csv into its figures/; never fatal."""
    jobs = [(TRAINING_CURVES, lambda p: plot_training_curves(run_dir.metrics_columns(), p))]
    return _run_safely(run_dir.figures, jobs)


def _run_safely(figures_dir: Path, jobs) -> list[Path]:
    written = []
    for name, draw in jobs:
        try:
            written.append(draw(figures_dir / name))
        except Exception as exc:  # a figure must never cost the user a finished training run
            log.warning("could not draw %s: %s: %s", figures_dir / name, type(exc).__name__, exc)
    return written
