"""scenes.plots and training.figures: real, non-blank PNGs of the expected size; training writes
them; grids are as large as their images need."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenes import plots, rundir
from scenes.rundir import RunDir
from scenes.training import figures

CLASSES = ["cat_a", "cat_b", "cat_c"]


def assert_png(path: Path, kind: str | tuple[int, int]) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (kind if isinstance(kind, tuple) else plots.pixel_size(kind))
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.var() > 0, f"{path} is blank"
    return pixels


def noisy_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_class_distribution(tmp_path):
    counts = {"train": {"a": 30, "b": 12, "c": 5}, "val": {"a": 8, "b": 3, "c": 1}}
    assert_png(plots.plot_class_distribution(counts, tmp_path / "dist.png"), "class_distribution")


def test_image_grid_and_training_samples(tmp_path):
    images = noisy_images(20)
    labels = np.array([0] * 14 + [1] * 4 + [2] * 2)
    full = plots.grid_pixel_size(16)
    assert_png(figures.plot_training_samples(images, labels, CLASSES, tmp_path / "s.png"), full)
    # Three images (e.g. three mistakes) get a 2 x 2 grid, not a mostly blank 4 x 4 page.
    assert plots.grid_shape(3) == (2, 2) and plots.grid_shape(1) == (1, 1)
    small = plots.grid_pixel_size(3)
    assert_png(plots.plot_image_grid(images[:3], ["x"] * 3, tmp_path / "g.png"), small)
    assert small[0] < full[0] and small[1] < full[1]


def test_pick_samples_shows_every_class():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 1)
    chosen = figures.pick_samples(labels, 16, seed=1)
    assert len(chosen) == len(set(chosen)) == 16
    assert set(labels[chosen]) == {0, 1, 2}
    assert figures.pick_samples(labels, 16, seed=1) == chosen  # seeded


@pytest.mark.parametrize(
    "preset, names",
    [
        ("none", ["original"]),
        (
            "classic",
            [
                "original",
                "horizontal flip",
                "shift-scale-rotate",
                "gamma",
                "rotate",
                "pixel dropout",
            ],
        ),
        (
            "trivialaugment",
            ["original", "horizontal flip", "shear x", "shear y", "translate x", "translate y"]
            + ["rotate", "brightness", "color", "contrast", "sharpness", "posterize", "solarize"]
            + ["autocontrast", "equalize"],
        ),
    ],
)
def test_augmentation_sheet(tmp_path, preset, names):
    """The sheet is drawn from the training preset's own operations, each alone."""
    image = noisy_images(1, 48)[0]
    panels = figures.augmentation_panels(image, preset)
    assert [name for name, _ in panels] == names
    assert all(shown.shape == image.shape and shown.dtype == np.uint8 for _, shown in panels)
    if preset != "none":
        # Each step is applied with probability 1: the flip panel is exactly the mirror image.
        flipped = dict(panels)["horizontal flip"]
        assert np.array_equal(flipped, image[:, ::-1])
        changed = [name for name, shown in panels[1:] if not np.array_equal(shown, image)]
        # a noisy image already spans 0..255: autocontrast has nothing to stretch
        assert changed == [name for name in names[1:] if name != "autocontrast"]
    assert_png(figures.plot_augmentations(image, preset, tmp_path / "aug.png"), "augmentations")


def test_training_curves(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(
        "epoch,time_s,lr,train_loss,train_acc,train_f1,val_loss,val_acc,val_f1\n"
        "1,2.0,0.001,1.2,0.5,0.45,1.0,0.6,0.55\n"
        "2,2.1,0.0005,0.8,0.7,0.68,0.9,0.7,0.66\n"
        "3,2.0,0.0001,0.5,0.85,0.84,0.85,0.72,0.7\n"
    )
    columns = RunDir(tmp_path).metrics_by_column()
    assert_png(plots.plot_training_curves(columns, tmp_path / "c.png"), "training_curves")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.csv").write_text("epoch,train_loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        plots.plot_training_curves(RunDir(empty).metrics_by_column(), tmp_path / "x.png")


def test_confusion_matrix_with_an_empty_row(tmp_path):
    confusion = [[5, 1, 0], [0, 0, 0], [2, 0, 7]]  # class 1 absent: no division by zero
    assert_png(
        plots.plot_confusion_matrix(confusion, CLASSES, tmp_path / "cm.png"), "confusion_matrix"
    )


def test_training_writes_all_figures(trained_run):
    folder = trained_run / "figures"
    for name, kind in (
        (rundir.CLASS_DISTRIBUTION, "class_distribution"),
        (rundir.TRAINING_SAMPLES, plots.grid_pixel_size(16)),
        (rundir.AUGMENTATIONS, "augmentations"),
        (rundir.TRAINING_CURVES, "training_curves"),
    ):
        assert_png(folder / name, kind)


def test_a_failing_figure_warns_instead_of_raising(tmp_path, caplog):
    class BrokenData:
        class_names = CLASSES

        def class_counts(self):
            raise RuntimeError("boom")

        @property
        def train(self):
            raise RuntimeError("no pixels")

    with caplog.at_level(logging.WARNING, logger="scenes.plots"):
        written = figures.write_data_figures(tmp_path, BrokenData(), "classic")
        assert figures.write_curve_figures(RunDir(tmp_path / "no-run")) == []
    assert written == []
    assert "boom" in caplog.text and "metrics.csv not found" in caplog.text
