"""A mistake is an error that says the fix, before any work: a mistyped folder downloads
nothing, every output path is checked before a model is loaded, counts are range-checked by
the parser, and a bug is told apart from a user's mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenes.cli import main
from scenes.errors import DataError
from scenes.rundir import RunDir
from scenes.serve.predictor import Predictor

from conftest import make_folder, make_image, tiny_train_config


@pytest.fixture
def no_work(monkeypatch):
    """Any attempt to load a model or download data fails the test: the error must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the mistake was reported")

    monkeypatch.setattr(Predictor, "load", classmethod(refuse))
    monkeypatch.setattr("scenes.data.download.download_intel", refuse)


def test_a_mistyped_data_folder_is_an_error_not_a_download(tmp_path, monkeypatch, no_work, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCENES_DATA", raising=False)
    assert main(["train", "--data", "data/intle"]) == 2
    err = capsys.readouterr().err
    assert "data folder not found: data/intle" in err and "scenes data download" in err
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("SCENES_DATA", str(tmp_path / "typo"))
    assert main(["train"]) == 2
    assert "typo" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "--run", "R", "IMG", "--out", "{tmp}/missing/preds.csv"], "does not exist"),
        (["predict", "--run", "R", "IMG", "--out", "{tmp}"], "is a folder"),
        (["export", "--run", "R", "--out", "{tmp}"], "is a folder"),
        (["export", "--run", "R", "--out", "{tmp}/nope/model.onnx"], "does not exist"),
        (["evaluate", "--run", "R", "--split", "val", "--out", "{file}"], "is a file"),
        (["explain", "--run", "R", "IMG", "--out", "{file}"], "is a file"),
        (["explain", "--run", "R", "IMG", "--out", "{file}/sub"], "which is a file"),
    ],
)
def test_every_output_path_is_checked_before_any_work(
    trained_run, tmp_path, no_work, capsys, argv, message
):
    image = make_image(tmp_path / "x.jpg", (200, 40, 40))
    afile = tmp_path / "exists.txt"
    afile.write_text("a file")
    values = {"R": str(trained_run), "IMG": str(image)}
    argv = [values.get(a, a).format(tmp=tmp_path, file=afile) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_failed_export_leaves_no_temporary_file(trained_run, tmp_path, monkeypatch):
    import onnx

    from scenes.serve.formats import export

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(trained_run, "onnx", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--run", "R", "x.jpg", "--batch-size", "0"],
        ["predict", "--run", "R", "x.jpg", "--batch-size", "-3"],
        ["predict", "--run", "R", "x.jpg", "--top-k", "0"],
        ["evaluate", "--run", "R", "--split", "val", "--batch-size", "0"],
        ["explain", "--run", "R", "x.jpg", "--batch-size", "0"],
        ["app", "--run", "R", "--port", "99999"],
        ["app", "--run", "R", "--port", "0"],
        ["resize", "a", "b", "--size", "0"],
        ["resize", "a", "b", "--workers", "0"],
        ["data", "issues", "d", "--folds", "1"],
        ["data", "issues", "d", "--top", "0"],
        ["train", "--epochs", "0"],
        ["train", "--batch-size", "-1"],
        ["train", "--lr", "0"],
        ["train", "--image-size", "abc"],
    ],
)
def test_counts_and_sizes_are_range_checked_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert any(m in err for m in ("must be at least", "greater than 0", "1..65535", "expected"))
    assert "Traceback" not in err


def test_a_file_where_a_folder_is_expected_says_so(trained_run, tmp_path, capsys):
    photo = make_image(tmp_path / "photo.jpg", (200, 40, 40))
    assert main(["data", "check", str(photo)]) == 2
    assert "photo.jpg is a file" in capsys.readouterr().err
    assert main(["resize", str(photo), str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err
    best = trained_run / "checkpoints" / "best.ckpt"
    assert main(["predict", "--run", str(best), str(photo)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and f"its run is {trained_run}" in err


def test_data_check_suggests_data_issues_only_where_there_are_labels(tmp_path, capsys):
    loose = tmp_path / "loose"
    for i in range(3):
        make_image(loose / f"{i}.jpg", (10 * i, 40, 40), seed=i)
    main(["data", "check", str(loose)])
    assert "data issues" not in capsys.readouterr().out
    main(["data", "check", str(make_folder(tmp_path / "labelled", ["a", "b"], 3))])
    assert "data issues" in capsys.readouterr().out


def test_data_issues_offline_names_its_own_options(tmp_path, monkeypatch, capsys):
    from urllib.error import URLError

    import torch

    def refuse(*args, **kwargs):
        raise URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("SCENES_WEIGHTS_DIR", raising=False)
    folder = make_folder(tmp_path / "d", ["a", "b"], 6)
    assert main(["data", "issues", str(folder), "--model", "resnet18", "--folds", "2"]) == 2
    err = capsys.readouterr().err
    assert "--set model.weights_file=FILE" in err and "--run RUN_DIR" in err
    assert "--no-pretrained" not in err and "--weights FILE" not in err


def test_data_issues_refuses_a_recipe_it_would_ignore(trained_run, tmp_path, capsys):
    folder = make_folder(tmp_path / "d", ["a", "b"], 6)
    argv = ["data", "issues", str(folder), "--run", str(trained_run)]
    assert main([*argv, "--set", "model.name=resnet50"]) == 2
    assert "model.name" in capsys.readouterr().err
    assert main([*argv, "--config", "configs/default.yaml"]) == 2
    assert "--run and --config" in capsys.readouterr().err


def test_one_class_is_refused_before_anything_is_decoded(tmp_path, monkeypatch):
    from scenes.training import train

    def refuse(*args, **kwargs):
        raise AssertionError("decoded before refusing")

    monkeypatch.setattr("scenes.data.loaders.decode_images", refuse)
    data = make_folder(tmp_path / "data", ["only"], 6)
    with pytest.raises(DataError, match="at least two classes"):
        train(tiny_train_config(data, tmp_path / "run"))


def test_an_empty_validation_split_is_refused(tmp_path):
    from scenes.training import train

    data = make_folder(tmp_path / "data", ["a", "b"], 6)
    train(tiny_train_config(data, tmp_path / "probe", **{"train.epochs": 1}))
    # excluding exactly the validation images leaves none to validate on
    val = [str(r.path) for r in RunDir(tmp_path / "probe").read_split() if r.split == "val"]
    val_only = tmp_path / "exclude.txt"
    val_only.write_text("\n".join(val))
    with pytest.raises(DataError, match="no validation images are left"):
        train(tiny_train_config(data, tmp_path / "run", **{"data.exclude": str(val_only)}))


def test_fewer_images_than_processes_is_refused():
    from types import SimpleNamespace

    from scenes.training.setup import check_shards

    data = SimpleNamespace(train=[0] * 10, val=[0])
    check_shards(data, 1)
    with pytest.raises(DataError, match="1 validation image"):
        check_shards(data, 2)


def test_two_runs_in_one_process_get_two_folders(tmp_path, monkeypatch):
    from scenes.training import train

    monkeypatch.chdir(tmp_path)
    data = make_folder(tmp_path / "data", ["a", "b"], 6)
    first = train(tiny_train_config(data, None, **{"train.epochs": 1}))
    second = train(tiny_train_config(data, None, **{"train.epochs": 1}))
    assert first.run_dir != second.run_dir
    assert (first.run_dir / "model").is_dir() and (second.run_dir / "model").is_dir()
    assert "SCENES_RUN_DIR" not in os.environ


def test_resume_from_another_folder_continues_the_same_run(tmp_path, monkeypatch, capsys):
    data = make_folder(tmp_path / "data", ["a", "b"], 6)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    common = ["--data", str(data), "--image-size", "32", "--batch-size", "8", "--no-pretrained"]
    common += ["--set", "train.progress_bar=false", "--set", "train.mode=full"]
    assert main(["train", *common, "--epochs", "1", "--out", "runs/r"]) == 0
    run = tmp_path / "a" / "runs" / "r"
    monkeypatch.chdir(tmp_path / "b")
    last = str(run / "checkpoints" / "last.ckpt")
    assert main(["train", "--resume", last, "--epochs", "2"]) == 0
    assert not (tmp_path / "b" / "runs").exists()
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    capsys.readouterr()
    assert main(["train", "--resume", last, "--epochs", "3", "--out", "elsewhere"]) == 2
    assert "names another folder" in capsys.readouterr().err


def test_a_bug_shows_its_traceback_and_a_mistake_does_not(monkeypatch, tmp_path, capsys):
    import scenes.data.check as check

    def buggy(directory):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(check, "run_stats", buggy)
    assert main(["data", "stats", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "an internal invariant broke" in err and "bug" in err
    monkeypatch.undo()
    assert main(["data", "stats", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "data folder not found" in err


def test_report_takes_run_like_every_other_command(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["report", "--run", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert main(["report", "--run", str(run / "model")]) == 0  # a run's bundle means the run
    assert Path(run / "report.md").is_file()
