"""The figures a run writes into ``RUN/figures/``: what the data looks like before training
(class distribution, training samples, the augmentation sheet) and the curves after it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..data.batch_augment import batch_generator, make_batch_augment, to_uint8, to_unit_float
from ..data.multilabel import label_text
from ..plots import (
    _new_figure,
    _save,
    draw_safely,
    plot_class_distribution,
    plot_image_grid,
    plot_training_curves,
)
from ..rundir import AUGMENTATIONS, CLASS_DISTRIBUTION, TRAINING_CURVES, TRAINING_SAMPLES, RunDir


def pick_samples(labels: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` samples, classes taking turns, so every class shows up (multi-label:
    an image joins the pool of each of its labels, and of "none" when it has none)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        members = [np.flatnonzero(labels[:, c]) for c in range(labels.shape[1])]
        members.append(np.flatnonzero(labels.sum(axis=1) == 0))
    else:
        members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    pools = [list(rng.permutation(m)) for m in members if len(m)]
    picked: list[int] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                index = int(pool.pop())
                if index not in picked:  # multi-label: one image may be in several pools
                    picked.append(index)
    return picked


def plot_training_samples(
    pixels, labels: np.ndarray, class_names: list[str], path: str | Path, seed: int = 0
) -> Path:
    """4x4 grid of training images (as decoded for the model), captioned with their labels."""
    chosen = pick_samples(labels, 16, seed)
    images = [pixels[i] for i in chosen]
    captions = [label_text(labels[i], class_names) or "(none)" for i in chosen]
    return plot_image_grid(images, captions, path, title="Training images")


def augmentation_panels(
    image: np.ndarray, preset: str, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """(name, image) pairs: the original, then every operation of the training preset
    ``preset`` applied alone, at probability 1 (each panel shows what the operation does, not
    whether it happened to fire). Built from the preset's own steps, so the sheet cannot show
    an augmentation that training does not run."""
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
    return draw_safely(figures_dir, jobs)


def write_curve_figures(run_dir: RunDir) -> list[Path]:
    """Training curves from the run's metrics.csv into its figures/; never fatal."""
    jobs = [(TRAINING_CURVES, lambda p: plot_training_curves(run_dir.metrics_by_column(), p))]
    return draw_safely(run_dir.figures, jobs)
