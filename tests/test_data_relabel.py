"""data.relabel: a decisions CSV relabels and excludes training images after the split."""

import csv
import hashlib

import numpy as np
import pytest

from scenes.config import load_config
from scenes.data.loaders import prepare_data, training_files
from scenes.data.relabel import apply_decisions
from scenes.errors import DataError
from scenes.rundir import RunDir
from scenes.training.setup import _split_rows

from conftest import make_folder

COLUMNS = ["path", "sha256", "given", "decision", "queue", "rank", "decided_at"]


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)


def config(data, **extra):
    return load_config(
        overrides={"data.dir": str(data), "data.image_size": 32, "data.val_fraction": 0.25, **extra}
    )


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_decisions(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for file, digest, decision in rows:
            writer.writerow([file, digest, "x", decision, "issues", 1, "2026-01-01T00:00:00"])
    return path


def test_decisions_relabel_exclude_and_skip_changed_files(data, tmp_path):
    relabelled, stale, dropped, listed = (
        data / "cat_a/000.jpg",
        data / "cat_a/001.jpg",
        data / "cat_b/002.jpg",
        data / "cat_c/003.jpg",
    )
    decisions = write_decisions(
        tmp_path / "decisions.csv",
        [
            ("cat_a/000.jpg", sha256(relabelled), "exclude"),  # overridden by the next row
            ("cat_a/000.jpg", sha256(relabelled), "cat_b"),
            (str(stale), "0" * 64, "exclude"),  # decided about other bytes
            (str(dropped), "", "exclude"),
            (str(data / "cat_c/004.jpg"), "", "keep"),
        ],
    )
    (tmp_path / "exclude.txt").write_text(f"{listed}\n")
    plain = prepare_data(config(data), *training_files(config(data)), progress=False)
    cfg = config(
        data, **{"data.relabel": str(decisions), "data.exclude": str(tmp_path / "exclude.txt")}
    )
    with pytest.warns(UserWarning, match=r"1 files changed since their decision .*001\.jpg"):
        prepared = prepare_data(cfg, *training_files(cfg), progress=False)
    assert sorted(p for p, _ in prepared.excluded) == sorted([dropped, listed])
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_split(_split_rows(prepared))
    rows = {r.path: r for r in run.read_split()}
    assert (rows[relabelled].label, rows[relabelled].given_label) == ("cat_b", "cat_a")
    assert rows[stale].label == rows[stale].given_label == "cat_a"  # not applied
    assert rows[dropped].split == rows[listed].split == "excluded"
    assert rows[dropped].label == "cat_b"
    # The split is the one drawn without decisions, less the excluded files.
    plain_sides = {
        **dict.fromkeys(plain.train_paths, "train"),
        **dict.fromkeys(plain.val_paths, "val"),
    }
    assert all(plain_sides[p] == r.split for p, r in rows.items() if r.split != "excluded")
    side = "train" if relabelled in prepared.train_paths else "val"
    dataset, paths = (
        (prepared.train, prepared.train_paths)
        if side == "train"
        else (prepared.val, prepared.val_paths)
    )
    assert dataset.labels[paths.index(relabelled)] == 1  # cat_b's index, in the tensor trained on
    # A resume reads the split back: the relabelled file is not "changed since the run started".
    with pytest.warns(UserWarning, match="changed since their decision"):
        again = prepare_data(
            cfg, *training_files(cfg), progress=False, saved_split=run.read_split()
        )
    assert again.train_paths == prepared.train_paths and again.val_paths == prepared.val_paths
    assert np.array_equal(again.train.labels, prepared.train.labels)
    assert again.excluded == prepared.excluded


def test_multilabel_decisions_set_several_classes(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for p in paths:
        p.write_bytes(b"x")
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    decisions = write_decisions(
        tmp_path / "d.csv", [(str(paths[0]), "", "b;c"), (str(paths[2]), "", "exclude")]
    )
    new, excluded = apply_decisions(decisions, tmp_path, paths, labels, ["a", "b", "c"])
    assert new[0].tolist() == [0, 1, 1] and new[1].tolist() == [0, 1, 0]
    assert excluded.tolist() == [2]


def test_bad_decisions_are_refused_naming_the_file(data, tmp_path):
    wrong = write_decisions(tmp_path / "d.csv", [("cat_a/000.jpg", "", "cat_z")])
    cfg = config(data, **{"data.relabel": str(wrong)})
    with pytest.raises(DataError, match=r"d\.csv: decision 'cat_z' for cat_a/000\.jpg"):
        prepare_data(cfg, *training_files(cfg), progress=False)
    (tmp_path / "no_decision.csv").write_text("path,label\ncat_a/000.jpg,cat_b\n")
    cfg = config(data, **{"data.relabel": str(tmp_path / "no_decision.csv")})
    with pytest.raises(DataError, match="lacks the column.s. decision"):
        prepare_data(cfg, *training_files(cfg), progress=False)
