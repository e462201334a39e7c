"""One voice: every option explains itself and its default, the shared options read alike on
every command, a log file of any command is clean text, and commands start as fast as what
they need allows."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scenes
from scenes.cli import build_parser, main
from scenes.cli.parser import leaf_parsers
from scenes.cli.train_args import train_options

from conftest import make_folder, make_image


def test_every_option_has_help_and_says_its_default():
    missing, no_default = [], []
    for command, parser in leaf_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip():
                missing.append(f"{command} {name}")
            takes_value = action.nargs != 0 and action.option_strings
            says = "default" in action.help or "required" in action.help
            if takes_value and not says:
                no_default.append(f"{command} {name}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options that do not say their default: {no_default}"


def test_the_commands_that_read_a_run_all_take_run():
    for command, parser in leaf_parsers(build_parser()):
        if command.split()[1] in ("evaluate", "predict", "app", "export", "explain", "report"):
            assert any("--run" in a.option_strings for a in parser._actions), command


@pytest.mark.parametrize("option", ["--device", "--backend", "--batch-size"])
def test_shared_options_are_on_every_inference_command(option):
    commands = {c: p for c, p in leaf_parsers(build_parser())}
    for command in ("scenes evaluate", "scenes predict", "scenes explain"):
        assert any(option in a.option_strings for a in commands[command]._actions), command
    assert any("--tta" in a.option_strings for a in commands["scenes predict"]._actions)
    assert any("--tta" in a.option_strings for a in commands["scenes app"]._actions)


def test_version_and_verbosity_before_or_after_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert (
        done.value.code == 0 and capsys.readouterr().out.strip() == f"scenes {scenes.__version__}"
    )
    folder = make_folder(tmp_path / "d", ["a", "b"], 2)
    for argv in (["-q", "data", "stats", str(folder)], ["data", "stats", str(folder), "-q"]):
        assert main(argv) == 0
        assert "total" in capsys.readouterr().out
    args = build_parser().parse_args(["-v", "data", "stats", "x"])
    assert args.verbose and not args.quiet
    args = build_parser().parse_args(["data", "stats", "x", "--verbose", "--no-progress"])
    assert args.verbose and not args.progress


def test_errors_name_the_subcommand(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "scenes data check: error: data folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data"])
    err = capsys.readouterr().err
    assert "scenes data: error" in err and "data_command" not in err


def parse_train(*argv: str) -> dict:
    return train_options(build_parser().parse_args(["train", *argv]))["overrides"]


def test_train_flags_become_config_fields(tmp_path):
    state = tmp_path / "weights.pth"
    state.write_bytes(b"")
    assert parse_train("--weights", str(state)) == {"model.weights_file": str(state)}
    assert parse_train("--weights", "IMAGENET1K_V1") == {"model.weights": "IMAGENET1K_V1"}
    assert parse_train("--weights", "missing/other.safetensors") == {
        "model.weights_file": "missing/other.safetensors"  # a file's name: refused as missing
    }
    assert parse_train("--mode", "full", "--epochs", "3") == {
        "train.mode": "full",
        "train.epochs": 3,
    }
    assert parse_train("--devices", "0,2", "--no-progress") == {
        "train.devices": [0, 2],
        "train.progress_bar": False,
    }


def test_a_train_command_line_copied_into_tune_builds_the_same_recipe(tmp_path, monkeypatch):
    from scenes.tune import study

    recipe = ["--data", str(tmp_path), "--model", "resnet18", "--epochs", "3"]
    recipe += ["--image-size", "64", "--lr", "0.01", "--no-pretrained", "--no-progress"]
    called = {}
    monkeypatch.setattr(study, "run_tune", lambda **kwargs: called.update(kwargs) or 0)
    assert main(["tune", *recipe, "--out", str(tmp_path / "study"), "--trials", "2"]) == 0
    assert called["overrides"] == parse_train(*recipe)
    assert called["overrides"]["model.name"] == "resnet18"
    assert called["out"] == str(tmp_path / "study") and called["trials"] == 2
    assert "out" not in called["overrides"]  # a trial's folder is the study's, not --out


def test_the_removed_freeze_backbone_flag_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--freeze-backbone"])
    assert "unrecognized arguments: --freeze-backbone" in capsys.readouterr().err


def test_data_download_takes_out_like_every_other_command():
    for flag in ("--out", "--dest"):
        args = build_parser().parse_args(["data", "download", flag, "somewhere"])
        assert args.dest == "somewhere"


# -- a log file of any command is clean text --------------------------------------------------
MESS = re.compile(r"\r|\x1b|\d+%\||it/s|img/s\]|Training: |Epoch \d+:")


def run_logged(argv: list[str], log: Path, env: dict | None = None) -> int:
    """``scenes ARGV > log 2>&1``, as in a CI job or a nohup'd run: no terminal anywhere."""
    with log.open("w") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "scenes", *argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            timeout=600,
        )
    return done.returncode


def test_a_log_file_of_every_command_is_clean_text(tmp_path, trained_run):
    data = make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)
    run = tmp_path / "run"
    logs = {
        "train": [
            "train",
            *("--data", str(data), "--out", str(run), "--epochs", "2", "--image-size", "32"),
            *("--batch-size", "8", "--no-pretrained", "--mode", "full"),
        ],
        "predict": ["predict", "--run", str(trained_run), str(data)],
        "evaluate": [
            "evaluate",
            "--run",
            str(trained_run),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "e"),
        ],
        "issues": [
            *("data", "issues", str(data), "--run", str(trained_run)),
            *("--folds", "3", "--out", str(tmp_path / "i")),
        ],
    }
    for name, argv in logs.items():
        log = tmp_path / f"{name}.log"
        assert run_logged(argv, log) == 0, log.read_text()
        text = log.read_text()
        assert not MESS.search(text), (name, MESS.search(text).group(0), text[:2000])
        assert all(line.isprintable() for line in text.splitlines()), name
    train_log = (tmp_path / "train.log").read_text()
    assert re.search(r"decoding images at 32 px: 36 images in [\d.]+ s", train_log)
    rows = [line for line in train_log.splitlines() if re.match(r"\s+[12]\s+[\d.]+s ", line)]
    assert len(rows) == 2  # one line per epoch, nothing glued to them
    assert "predicting: 36 images in" in (tmp_path / "predict.log").read_text()


# -- commands start as fast as what they need allows -------------------------------------------
def loaded_after(code: str) -> list[str]:
    script = (
        "import json, sys\n"
        f"{code}\n"
        "heavy = ('torch', 'torchvision', 'lightning', 'timm', 'matplotlib', 'gradio')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_predict_with_onnx_loads_no_torch(trained_run, tmp_path):
    from scenes.serve.formats import export

    bundle = tmp_path / "bundle"
    import shutil

    shutil.copytree(trained_run / "model", bundle)
    export(bundle, "onnx")  # once, with torch: serving it needs none
    photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
    out = tmp_path / "p.csv"
    argv = ["predict", "--run", str(bundle), str(photo), "--backend", "onnx", "--out", str(out)]
    code = f"from scenes.cli import main\nassert main({argv!r}) == 0"
    assert loaded_after(code) == []
    assert "cat_a" in out.read_text()


def test_a_wrong_run_is_refused_before_anything_heavy_is_imported(tmp_path):
    photo = make_image(tmp_path / "x.jpg", (220, 40, 40))
    argv = ["predict", "--run", str(tmp_path / "no-run"), str(photo)]
    code = f"from scenes.cli import main\nassert main({argv!r}) == 2"
    assert loaded_after(code) == []


def test_confusion_matrix_columns_show_whole_class_names():
    from scenes.evaluation.outputs import EvalResult, format_result
    from scenes.metrics import compute_metrics

    names = ["mountain", "mountain_lake", "street"]  # cut to 7 letters, two would read alike
    metrics = compute_metrics([0, 1, 2, 1], [0, 1, 2, 0], names)
    result = EvalResult(**metrics, class_names=names, predictions=[], out_dir=None)
    lines = format_result(result).splitlines()
    header = lines[lines.index("confusion matrix (rows: true, columns: predicted)") + 1]
    assert header.split() == names


def test_predict_out_dash_writes_only_the_csv_to_stdout(trained_run, tmp_path, capsys):
    import csv
    import io

    photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
    assert main(["predict", "--run", str(trained_run), str(photo), "--out", "-"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["path"] for r in rows] == [str(photo)] and rows[0]["label_1"] == "cat_a"
    assert "wrote 1 prediction to stdout" in captured.err
