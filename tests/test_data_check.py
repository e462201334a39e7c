"""scenes.data.check: planted problems are found; stats count per split and class."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scenes.cli import main
from scenes.data.check import check_folder, folder_stats, format_report, format_stats
from scenes.errors import DataError

from conftest import INTEL_TRAIN, make_folder, needs_intel


@pytest.fixture
def clean_dataset(tmp_path) -> Path:
    root = tmp_path / "dataset"
    make_folder(root / "train", ["a", "b"], 4, seed=1)
    make_folder(root / "test", ["a", "b"], 2, seed=2)
    return root


@pytest.fixture
def dirty_dataset(clean_dataset) -> Path:
    root = clean_dataset
    train, test = root / "train", root / "test"
    shutil.copy(train / "a" / "000.jpg", train / "a" / "copy.jpg")  # duplicate, same label
    shutil.copy(train / "a" / "001.jpg", test / "b" / "leak.jpg")  # across splits, other label
    good = (train / "b" / "000.jpg").read_bytes()
    (train / "b" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (train / "b" / "notes.jpg").write_text("this is text, not a JPEG")
    (train / "a" / "labels.txt").write_text("a,b")
    return root


def test_clean_folder(clean_dataset):
    report = check_folder(clean_dataset, progress=False)
    assert report.clean and report.num_files == 12
    assert report.sizes == {(40, 40): 12}
    assert "clean: no problems found" in format_report(report)


def test_planted_problems_are_found(dirty_dataset):
    root = dirty_dataset
    report = check_folder(root, progress=False)
    assert set(report.corrupt) == {root / "train" / "b" / "truncated.jpg"}
    assert set(report.non_images) == {
        root / "train" / "b" / "notes.jpg",
        root / "train" / "a" / "labels.txt",
    }
    assert "not an image" in report.non_images[root / "train" / "b" / "notes.jpg"]

    groups = {frozenset(f.path.name for f in g.files): g for g in report.duplicates}
    assert set(groups) == {frozenset({"000.jpg", "copy.jpg"}), frozenset({"001.jpg", "leak.jpg"})}
    within = groups[frozenset({"000.jpg", "copy.jpg"})]
    assert not within.across_splits and not within.label_conflict
    leak = groups[frozenset({"001.jpg", "leak.jpg"})]
    assert leak.across_splits and leak.label_conflict
    assert leak.splits == {"train", "test"} and leak.labels == {"a", "b"}
    assert report.label_conflicts == [leak] and report.cross_split_duplicates == [leak]
    assert report.num_problems == 5 and not report.clean

    text = format_report(report)
    assert "LABEL CONFLICT, across splits" in text
    assert "truncated.jpg" in text and "notes.jpg" in text
    assert "14 readable images" in text  # 12 + copy + leak; the two broken ones excluded


def test_bare_and_kaggle_layouts(tmp_path):
    bare = make_folder(tmp_path / "bare", ["x", "y"], 2)
    shutil.copy(bare / "x" / "000.jpg", bare / "y" / "dup.jpg")
    report = check_folder(bare, progress=False)
    assert len(report.label_conflicts) == 1

    kaggle = tmp_path / "kaggle"
    make_folder(kaggle / "seg_train" / "seg_train", ["x", "y"], 2, seed=1)
    make_folder(kaggle / "seg_test" / "seg_test", ["x", "y"], 1, seed=2)
    stats = folder_stats(kaggle)
    assert {split: dict(c) for split, c in stats.items()} == {
        "train": {"x": 2, "y": 2},
        "test": {"x": 1, "y": 1},
    }


def test_stats_counts_per_split_and_class(dirty_dataset):
    stats = folder_stats(dirty_dataset)
    assert dict(stats["train"]) == {"a": 5, "b": 6}  # image-named files, readable or not
    assert dict(stats["test"]) == {"a": 2, "b": 3}
    text = format_stats(stats)
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()}
    assert lines["a"] == ["5", "2", "7"] and lines["total"] == ["11", "5", "16"]


def test_cli_data_check_and_stats_exit_codes(clean_dataset, dirty_dataset, tmp_path, capsys):
    clean = make_folder(tmp_path / "clean", ["a", "b"], 2)
    assert main(["data", "check", str(clean)]) == 0
    assert main(["data", "check", str(dirty_dataset)]) == 1
    assert "LABEL CONFLICT" in capsys.readouterr().out
    assert main(["data", "stats", str(dirty_dataset)]) == 0
    assert "total" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        check_folder(empty)


@needs_intel
def test_real_training_folder_quirks():
    """The shared Intel train folder: 15 duplicate pairs, 10 labelled differently, small images."""
    report = check_folder(INTEL_TRAIN, progress=False)
    assert len(report.duplicates) == 15
    assert all(len(g.files) == 2 for g in report.duplicates)
    assert len(report.label_conflicts) == 10
    assert not report.corrupt and not report.non_images
    assert sum(n for (w, h), n in report.sizes.items() if h < 150) == 48
