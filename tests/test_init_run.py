"""``scenes train --init RUN``: a new run from a trained run's weights, new classes added
below the old ones, rehearsal of the old classes, and what is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scenes.cli import main
from scenes.config import load_config
from scenes.data.discover import list_labelled_files
from scenes.errors import ConfigError
from scenes.models.bundle import read_meta, weights_digest
from scenes.rundir import RunDir
from scenes.serve.predictor import Predictor
from scenes.training.init_run import (
    build_from_init,
    continued_files,
    read_init,
)

from conftest import make_folder, tiny_train_config

OLD = ["cat_a", "cat_b", "cat_c"]  # trained_run's classes


def init_config(trained_run: Path, data: Path, out: Path | None, **overrides):
    return tiny_train_config(
        data, out, **{"model.name": "resnet18", "model.init": str(trained_run), **overrides}
    )


def old_class_photos(root: Path) -> list[Path]:
    """New photos of the old classes (another seed than trained_run's)."""
    folder = make_folder(root, OLD, 4, seed=7)
    return sorted(folder.rglob("*.jpg"))


def test_new_class_rows_leave_the_old_answers_as_they_were(trained_run, tmp_path):
    """At step 0 the old classes' probabilities are the run's (to 1e-5), on old-class photos,
    in any class order: rows are copied by name, not by position."""
    run = Predictor.load(trained_run, device="cpu")
    images, ok, _ = run.load_images(old_class_photos(tmp_path / "old"))
    assert len(ok) == 12
    before = torch.softmax(torch.from_numpy(run.logits(images)), 1)

    cfg = init_config(trained_run, tmp_path / "unused", None)
    names = ["cat_c", "new", "cat_a", "cat_b"]  # continued_files keeps the run's order
    built = build_from_init(cfg, names, read_init(cfg))
    with torch.no_grad():
        after = torch.softmax(built.module.eval()(run.to_input(images)).float(), 1)
    assert after.shape == (12, 4)
    assert torch.allclose(after[:, [2, 3, 0]], before, atol=1e-5, rtol=0)
    assert after[:, 1].max() < 1e-5
    assert built.mean == run.meta.mean and built.std == run.meta.std


def test_classes_keep_their_indices_and_rehearsal_fills_the_missing_ones(trained_run, tmp_path):
    new = make_folder(tmp_path / "new", ["aaa_new", "cat_b"], 3, seed=3)
    files = list_labelled_files(new)
    cfg = init_config(trained_run, new, None)
    init = read_init(cfg)
    continued = continued_files(files, init, rehearsal=2, seed=5)
    got = continued.files
    assert got.class_names == [*OLD, "aaa_new"]
    # the new data's own labels are mapped by name: aaa_new 0 -> 3, cat_b 1 -> 1
    assert [got.class_names[y] for y in got.labels[:6]] == ["aaa_new"] * 3 + ["cat_b"] * 3
    assert [Path(p).parent.name for p in got.paths[:6]] == ["aaa_new"] * 3 + ["cat_b"] * 3
    # cat_b is in the new data: learnt from it alone; cat_a and cat_c get 2 each from the run
    rehearsed = continued.rehearsed
    assert sorted(r.label for r in rehearsed) == ["cat_a"] * 2 + ["cat_c"] * 2
    run_train = {(r.path, r.label) for r in RunDir(trained_run).read_split() if r.split == "train"}
    assert all((r.path, r.label) in run_train for r in rehearsed)
    assert [got.class_names[y] for y in got.labels[6:]] == [r.label for r in rehearsed]
    assert continued.empty_classes == []
    # seeded: the same seed draws the same images, the whole class when N exceeds it
    again = continued_files(files, init, rehearsal=2, seed=5).rehearsed
    assert [r.path for r in again] == [r.path for r in rehearsed]
    everything = continued_files(files, init, rehearsal=100, seed=5).rehearsed
    per_class = {c: sum(1 for r, _ in run_train if _ == c) for c in ("cat_a", "cat_c")}
    assert (
        sorted(r.label for r in everything)
        == ["cat_a"] * per_class["cat_a"] + ["cat_c"] * per_class["cat_c"]
    )
    # without rehearsal, the lacking classes stay in the head with no image
    assert continued_files(files, init, rehearsal=0, seed=5).empty_classes == ["cat_a", "cat_c"]


def test_a_new_class_added_at_a_learning_rate_near_zero_answers_as_the_run(trained_run, tmp_path):
    """The end to end: a 4th class (its images only) plus rehearsal; at lr 1e-9 the new run's
    top-1 on photos of the old classes is the run's, and the run folder says where it began."""
    new = make_folder(tmp_path / "new", ["cat_d"], 8, seed=2)
    cfg = init_config(
        trained_run,
        new,
        tmp_path / "continued",
        **{"train.lr": 1e-9, "train.epochs": 1, "train.mode": "head", "train.rehearsal": 3},
    )
    from scenes.training import train

    result = train(cfg)
    run = RunDir(result.run_dir)
    recorded = yaml.safe_load(run.config.read_text())["model"]
    assert recorded["init"] == str(trained_run.resolve())
    assert recorded["init_sha256"] == weights_digest(trained_run)

    with (run.path / "rehearsal.csv").open() as fh:
        rehearsal = list(csv.DictReader(fh))
    assert sorted(r["label"] for r in rehearsal) == sorted(OLD * 3)
    split = {str(r.path): r.label for r in run.read_split()}
    assert all(split[r["path"]] == r["label"] for r in rehearsal)
    assert sum(1 for label in split.values() if label == "cat_d") == 8

    before, after = Predictor.load(trained_run), Predictor.load(run.path)
    assert after.class_names == [*OLD, "cat_d"]
    images, _, _ = before.load_images(old_class_photos(tmp_path / "old"))
    top1_before = before.logits(images).argmax(1)
    np.testing.assert_array_equal(after.logits(images).argmax(1), top1_before)
    assert sorted(set(top1_before.tolist())) == [0, 1, 2]  # the run tells the colours apart
    assert read_meta(run.path).training["init_sha256"] == weights_digest(trained_run)

    # It resumes like any run: its config names where it started, and the split is its own.
    resumed = train(load_config(run.config, {"train.epochs": 2}), resume=run.path)
    assert resumed.epochs_run == 2
    assert {str(r.path): r.label for r in run.read_split()} == split


def test_another_architecture_is_refused_naming_both(trained_run, tmp_path, capsys):
    data = make_folder(tmp_path / "new", ["cat_d", "cat_e"], 3)
    code = main(["train", "--data", str(data), "--init", str(trained_run), "--model", "resnet34"])
    err = capsys.readouterr().err
    assert code == 2
    assert "torchvision:resnet18" in err and "resnet34" in err
    assert not (tmp_path / "runs").exists()


def test_init_is_not_a_resume(trained_run, capsys):
    code = main(["train", "--init", str(trained_run), "--resume", str(trained_run)])
    assert code == 2
    assert "--init starts a new run" in capsys.readouterr().err


def test_init_options_need_each_other(trained_run):
    with pytest.raises(ConfigError, match="train.rehearsal"):
        load_config(overrides={"train.rehearsal": 5})
    with pytest.raises(ConfigError, match="model.init_sha256"):
        load_config(overrides={"model.init_sha256": "ab"})
    with pytest.raises(ConfigError, match="weights_file"):
        load_config(overrides={"model.init": "r", "model.weights_file": "w.pth"})
    changed = load_config(
        overrides={
            "model.name": "resnet18",
            "model.init": str(trained_run),
            "model.init_sha256": "0" * 64,
        }
    )
    with pytest.raises(ConfigError, match="weights changed"):
        read_init(changed)


def test_old_classes_without_images_are_warned_of_once_not_as_imbalance(
    trained_run, tmp_path, caplog
):
    """Without rehearsal the old classes have no training image: the run says so in its own
    words, and the imbalance notice does not add "cat_a 0 (...x)" to it."""
    new = make_folder(tmp_path / "new", ["cat_d", "cat_e"], 8, seed=2)
    cfg = init_config(
        trained_run,
        new,
        tmp_path / "continued",
        **{"train.epochs": 1, "train.mode": "head", "train.rehearsal": 0},
    )
    from scenes.training import train

    with caplog.at_level("WARNING"):
        train(cfg)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "the new data has no image of cat_a, cat_b, cat_c" in warned
    assert "imbalanced" not in warned
