"""`scenes compare`: runs side by side, with the numbers their own files hold."""

from __future__ import annotations

import csv
import json

import pytest

from scenes.cli import main
from scenes.training import train

from conftest import make_folder, tiny_train_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = make_folder(root / "data", ["a", "b", "c"], 12)
    runs = []
    for name, lr in (("slow", 1e-3), ("fast", 5e-3)):
        cfg = tiny_train_config(
            data, root / name, **{"model.name": "resnet18", "train.lr": lr, "train.epochs": 3}
        )
        runs.append(train(cfg).run_dir)
    return runs


def best_row(run) -> dict:
    from scenes.rundir import RunDir

    return RunDir(run).metrics_of_epoch(RunDir(run).best_epoch)


def test_compare_puts_two_runs_side_by_side(two_runs, tmp_path, capsys):
    slow, fast = two_runs
    for run in two_runs:
        assert main(["evaluate", "--run", str(run), "--split", "val"]) == 0
    capsys.readouterr()
    out = tmp_path / "report" / "compare.md"
    assert main(["compare", str(slow), str(fast), "--out", str(out)]) == 0
    assert f"comparison written to {out}" in capsys.readouterr().out
    text = out.read_text()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == 2
    header = next(line for line in text.splitlines() if line.startswith("| run"))
    assert "train.lr" in header  # the field that differs ...
    assert "bundle MB" in header
    assert "train.epochs" not in header and "data.image_size" not in header  # ... only
    for line, run, lr in zip(table, two_runs, ("0.001", "0.005")):
        cells = [c.strip() for c in line.strip("|").split("|")]
        best = best_row(run)
        assert cells[2] == lr
        assert f"{best['val_acc']:.4f}" in cells and f"{best['val_f1']:.4f}" in cells
        m = json.loads((run / "eval" / "val" / "metrics.json").read_text())
        assert (
            f"top-1 {m['accuracy']:.4f}, F1 {m['macro_f1']:.4f} ({m['num_images']} images)" in line
        )
    # per-class F1 side by side, as each run's evaluation says
    m_slow = json.loads((slow / "eval" / "val" / "metrics.json").read_text())
    row_a = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert f"{m_slow['per_class']['a']['f1']:.4f}" in row_a
    figures = out.parent / "compare_figures"
    for name in ("val_loss", "val_acc", "val_f1", "train_loss", "per_class_f1_val"):
        assert (figures / f"{name}.png").stat().st_size > 5000
        assert f"compare_figures/{name}.png" in text

    assert main(["compare", str(slow), str(fast)]) == 0  # to stdout, without figures
    printed = capsys.readouterr().out
    assert printed.startswith("# 2 runs compared") and "## Figures" not in printed


def test_compare_refuses_what_is_not_two_runs(two_runs, tmp_path, capsys):
    assert main(["compare", str(two_runs[0])]) == 2
    assert "two or more runs" in capsys.readouterr().err
    assert main(["compare", str(two_runs[0]), str(tmp_path)]) == 2
    assert f"{tmp_path}: no metrics.csv" in capsys.readouterr().err
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path / "x.txt")]) == 2
    assert "ending in .md" in capsys.readouterr().err


def test_compare_reads_tune_trials_with_the_tuned_fields(tmp_path):
    """The differing fields of tune trials are the parameters the study chose."""
    from scenes.evaluation.compare import differing_fields, load_run

    root = tmp_path
    data = make_folder(root / "data", ["a", "b", "c"], 12)
    for i, preset in enumerate(("none", "classic")):
        cfg = tiny_train_config(data, root / "trials" / f"{i:03d}", **{"augment.preset": preset})
        train(cfg)
    runs = [load_run(str(root / "trials" / n)) for n in ("000", "001")]
    assert differing_fields(runs) == ["augment.preset"]
    with (root / "trials" / "000" / "metrics.csv").open() as fh:
        assert len(runs[0].epochs["epoch"]) == len(list(csv.DictReader(fh)))
