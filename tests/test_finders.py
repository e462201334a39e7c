"""Lightning's finders on a recipe: the learning-rate range test (`--find-lr`, suggested and
not applied) and `data.batch_size: auto` (CUDA only; the search itself runs here on the CPU)."""

from __future__ import annotations

import csv

import pytest

from scenes.cli import main
from scenes.config import load_config
from scenes.errors import ConfigError
from scenes.training import train
from scenes.training.finders import find_lr, with_found_batch_size

from conftest import make_folder, tiny_train_config


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["a", "b", "c"], 12)


def test_find_lr_plots_the_range_test_and_changes_nothing(data, tmp_path):
    run = tmp_path / "run"
    finding = find_lr(tiny_train_config(data, run, **{"model.name": "resnet18"}), steps=12)
    assert finding.figure == run / "figures" / "lr_find.png"
    assert finding.figure.stat().st_size > 10_000
    with finding.table.open() as fh:
        rows = list(csv.DictReader(fh))
    lrs = [float(r["lr"]) for r in rows]
    assert len(rows) == finding.steps and 5 <= finding.steps <= 12
    assert lrs == sorted(lrs) and lrs[0] < 1e-6  # an exponential sweep up from 1e-7
    assert finding.suggestion is None or lrs[0] <= finding.suggestion <= lrs[-1]
    assert load_config(run / "config.yaml").train.lr == 3e-3  # the recipe's, not applied
    assert not (run / "metrics.csv").exists() and not (run / "model").exists()


def test_find_lr_refuses_a_checkpoint(tmp_path, capsys):
    assert main(["train", "--find-lr", "--resume", str(tmp_path / "last.ckpt")]) == 2
    assert "drop --resume" in capsys.readouterr().err


def test_batch_size_auto_is_refused_on_a_cpu_before_any_work(data, tmp_path):
    cfg = tiny_train_config(data, tmp_path / "run", **{"data.batch_size": "auto"})
    with pytest.raises(ConfigError, match="on cpu there is no such limit to find"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_the_batch_size_search_returns_a_number_the_run_records(data, tmp_path):
    """The CUDA path's search, run on the CPU: powers of two from 16 until max_trials."""
    cfg = tiny_train_config(data, tmp_path / "run", **{"data.batch_size": "auto"})
    found = with_found_batch_size(cfg, allow_cpu=True, max_trials=2)
    assert found.data.batch_size in (16, 32)  # 16, doubled once; at most the 27 images
    assert found.train == cfg.train and found.out == cfg.out
    assert not (tmp_path / "run").exists()  # the search used a scratch folder
