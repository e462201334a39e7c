"""scenes report (evaluation/report.py): report.md with the epoch table, best epoch, figures and evaluation results."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from scenes.cli import main
from scenes.evaluation.loop import evaluate
from scenes.evaluation.report import write_report
from scenes.rundir import RunDir

LINK = re.compile(r"\]\(([^)]+)\)")


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


def test_report_without_evaluation(run_copy):
    text = write_report(run_copy).read_text()
    with (run_copy / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "| epoch | time_s | lr | train_loss |" in text
    table_rows = [line for line in text.splitlines() if re.match(r"\| (\*\*)?\d+(\*\*)? \|", line)]
    assert len(table_rows) == len(rows)
    # The best epoch (lowest val_loss: the run's monitor) is named and in bold.
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert f"Best epoch: **{best['epoch']}** of {len(rows)} (by val_loss)" in text
    assert f"| **{best['epoch']}** |" in text
    assert "## Evaluation" in text and "Not evaluated yet" in text
    for name in ("training_curves", "class_distribution", "training_samples", "augmentations"):
        assert f"](figures/{name}.png)" in text
    links = LINK.findall(text)
    assert links and all((run_copy / link).exists() for link in links)


def test_report_includes_evaluation_results(run_copy):
    result = evaluate(run_copy, split="val")
    text = write_report(run_copy).read_text()
    saved = json.loads((run_copy / "eval" / "val" / "metrics.json").read_text())
    assert saved["accuracy"] == result.accuracy
    assert f"top-1 accuracy {result.accuracy:.4f}, macro F1 {result.macro_f1:.4f}" in text
    assert "](eval/val/confusion_matrix.png)" in text and "](eval/val/errors.png)" in text
    for name, stats in result.per_class.items():
        assert f"| {name} | {stats['precision']:.4f} | {stats['recall']:.4f} |" in text
    assert "Not evaluated yet" not in text
    assert all((run_copy / link).exists() for link in LINK.findall(text))


def test_best_epoch_is_the_one_best_ckpt_records(run_copy, tmp_path):
    """The report names the epoch training chose by its monitor (val_loss here), as recorded
    in best.ckpt, rather than choosing again from metrics.csv."""
    run = RunDir(run_copy)
    rows = run.read_metrics()
    lowest = min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert run.best_epoch == lowest
    assert f"Best epoch: **{run.best_epoch}** of {len(rows)} (by val_loss)" in (
        write_report(run_copy).read_text()
    )
    with pytest.raises(FileNotFoundError, match="best.ckpt"):
        RunDir(tmp_path).best_epoch  # noqa: B018


def test_cli_report_exit_codes(run_copy, tmp_path, capsys):
    assert main(["report", str(run_copy)]) == 0
    assert (run_copy / "report.md").is_file()
    assert str(run_copy / "report.md") in capsys.readouterr().out
    assert main(["report", str(tmp_path / "no-such-run")]) == 2
    assert "metrics.csv" in capsys.readouterr().err
