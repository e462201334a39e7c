"""`scenes tune`: a search space checked before the first trial; a study whose trials are
complete runs, that prunes, is interrupted and resumed, and writes a best.yaml that trains."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import yaml

from scenes.cli import main
from scenes.config import load_config
from scenes.errors import ConfigError
from scenes.tune import study as study_module
from scenes.tune.space import load_space

from conftest import answer_ctrl_c, make_folder

SMALL = [
    "data.image_size=32",
    "data.batch_size=8",
    "data.val_fraction=0.25",
    "model.name=resnet18",
    "model.pretrained=false",
    "train.epochs=2",
    "train.mode=full",
    "train.progress_bar=false",
]
SPACE = "train.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\naugment.preset: [none, classic]\n"


def sets(*extra: str) -> list[str]:
    return [arg for item in (*SMALL, *extra) for arg in ("--set", item)]


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["a", "b", "c"], 12)


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def read_trials(out: Path) -> list[dict]:
    with (out / "trials.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def start_first_trial(argv: list[str], env: dict, out: Path, epochs: int) -> subprocess.Popen:
    """``scenes tune`` started in a process, returned once its first trial has ``epochs``
    rows in metrics.csv."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=answer_ctrl_c,
    )
    metrics = out / "trials" / "000" / "metrics.csv"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) > epochs):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the trial did not finish {epochs} epoch(s): {proc.communicate()}")
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize(
    "text, says",
    [
        ("train.lrr: {low: 1, high: 2}", "train.lrr: not a config field"),
        ("train: {low: 1, high: 2}", "train: not a config field"),
        ("train.lr: {low: 0.1, high: 0.01}", "low (0.1) must be below high (0.01)"),
        ("train.lr: {low: 0.0, high: 0.1, log: true}", "a log range needs low > 0"),
        ("train.lr: {low: -1.0, high: 0.1}", "-1.0 is not a valid value"),
        ("train.epochs: {low: 1.5, high: 4}", "an integer field: low must be whole"),
        ("augment.preset: [classic]", "two or more different values"),
        ("augment.preset: [classic, sepia]", "'sepia' is not a valid value"),
        ("augment.preset: {low: 1, high: 2}", "not a number field"),
        ("out: [a, b]", "set by scenes tune itself"),
        ("train.monitor: [val_acc, val_f1]", "use --objective"),
        ("train.lr: {low: 1.0e-4, high: 1.0e-2, lg: true}", "give a list of values or a range"),
        ("[1, 2]", "a search space is a mapping"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_field(tmp_path, text, says):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="space.yaml") as err:
        load_space(path, load_config())
    assert says in str(err.value)


def test_the_default_space_is_valid_and_shipped_in_configs():
    dims = load_space(None, load_config())
    assert {d.field for d in dims} >= {"train.lr", "augment.preset"}
    shipped = Path(__file__).resolve().parents[1] / "configs" / "tune_space.yaml"
    assert [d.field for d in load_space(shipped, load_config())] == [d.field for d in dims]


def test_a_bad_space_or_objective_fails_before_any_trial(data, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train.lr: {low: 0.1, high: 0.01}")
    out = tmp_path / "study"
    assert main(["tune", "--data", str(data), "--space", str(bad), "--out", str(out)]) == 2
    assert "low (0.1) must be below high" in capsys.readouterr().err
    assert main(["tune", "--data", str(data), "--objective", "val_map", "--out", str(out)]) == 2
    assert "val_map does not apply to multiclass" in capsys.readouterr().err
    assert not (out / "trials").exists()


def test_a_study_runs_continues_and_writes_a_best_yaml_that_trains(data, space, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "--data", str(data), "--space", str(space), "--out", str(out)]
    assert main([*argv, "--trials", "2", *sets()]) == 0
    printed = capsys.readouterr().out
    assert "trial 1 (2/2 done)" in printed and "best: trial" in printed
    trials = read_trials(out)
    assert [t["state"] for t in trials] == ["complete", "complete"]
    for t in trials:
        run = Path(t["run_dir"])
        assert run == out / "trials" / f"{int(t['trial']):03d}"
        assert (run / "model" / "model.json").is_file()
        cfg = load_config(run / "config.yaml")
        assert cfg.train.lr == pytest.approx(float(t["train.lr"]))
        assert cfg.augment.preset == t["augment.preset"] and cfg.train.monitor == "val_f1"
        # the trial's objective is its best epoch's validation macro F1, as metrics.csv says
        with (run / "metrics.csv").open() as fh:
            f1 = [float(r["val_f1"]) for r in csv.DictReader(fh)]
        assert float(t["val_f1"]) == pytest.approx(max(f1))
    for name in ("optimization_history", "param_importances", "slice"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000

    # the same command continues the study: one more trial makes three
    assert main([*argv, "--trials", "3", *sets()]) == 0
    assert "2 of 3 trials done" in capsys.readouterr().out
    assert [t["trial"] for t in read_trials(out)] == ["0", "1", "2"]
    assert main([*argv, "--trials", "3", *sets()]) == 0
    assert "already has 3 finished trials" in capsys.readouterr().out

    # best.yaml is the best trial's config, in a new folder: scenes train reproduces it
    best = max(read_trials(out), key=lambda t: float(t["val_f1"]))
    tree = yaml.safe_load((out / "best.yaml").read_text())
    trained = yaml.safe_load((Path(best["run_dir"]) / "config.yaml").read_text())
    assert tree["out"] is None and {**trained, "out": None} == tree
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(again)]) == 0
    with (again / "metrics.csv").open() as fh:
        assert max(float(r["val_f1"]) for r in csv.DictReader(fh)) == pytest.approx(
            float(best["val_f1"]), abs=1e-6
        )


def test_a_clearly_worse_trial_is_pruned_and_keeps_its_bundle(
    data, space, tmp_path, monkeypatch, capsys
):
    import optuna

    # A pruner that prunes everything: the mechanism, not Optuna's median rule, is under test.
    monkeypatch.setattr(
        study_module, "make_pruner", lambda prune: optuna.pruners.ThresholdPruner(lower=2.0)
    )
    out = tmp_path / "study"
    argv = ["tune", "--data", str(data), "--space", str(space), "--out", str(out)]
    assert main([*argv, "--trials", "1", *sets("train.epochs=3")]) == 0
    assert "pruned after epoch 1" in capsys.readouterr().out
    (trial,) = read_trials(out)
    assert trial["state"] == "pruned" and trial["pruned_epoch"] == "1"
    run = Path(trial["run_dir"])
    with (run / "metrics.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 1  # stopped after the pruned epoch
    assert (run / "model" / "model.json").is_file()
    assert not (out / "best.yaml").exists()  # no complete trial: no best


class CtrlCAtEpoch(L.Callback):
    """Ctrl-C as Python delivers it (a KeyboardInterrupt) at the start of an epoch: the
    epochs before it are done, with their checkpoints on disk."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_stops_the_study_and_the_rerun_retries_that_trial(
    data, space, tmp_path, monkeypatch, capsys
):
    import scenes.training

    train = scenes.training.train

    def train_interrupted_in_epoch_3(cfg, resume=None, extra_callbacks=None):
        return train(cfg, resume, [*(extra_callbacks or []), CtrlCAtEpoch(2)])

    monkeypatch.setenv("SCENES_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    argv = ["tune", "--data", str(data), "--space", str(space), "--out", str(out)]
    argv += ["--trials", "1"]
    with monkeypatch.context() as patched:
        patched.setattr(scenes.training, "train", train_interrupted_in_epoch_3)
        assert main([*argv, *sets("train.epochs=4", "train.patience=1000")]) == 130
    assert "Run the same command again to continue" in capsys.readouterr().out
    (interrupted,) = read_trials(out)
    assert interrupted["state"] == "fail"
    assert (out / "trials" / "000" / "model" / "model.json").is_file()  # best epoch so far

    assert main([*argv, *sets()]) == 0
    assert "trial 0 was interrupted: queued again with its parameters" in capsys.readouterr().out
    first, retried = read_trials(out)
    assert retried["state"] == "complete"
    assert retried["train.lr"] == first["train.lr"]
    assert retried["augment.preset"] == first["augment.preset"]


def test_a_killed_process_trial_is_failed_by_its_heartbeat_and_retried(
    data, space, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "study"
    args = ["tune", "--data", str(data), "--space", str(space), "--out", str(out), "--trials", "1"]
    argv = [sys.executable, "-m", "scenes", *args, *sets("train.epochs=200")]
    env = {**os.environ, "SCENES_CACHE": str(tmp_path / "cache")}
    proc = start_first_trial(argv, env, out, epochs=1)
    proc.kill()  # SIGKILL: no handler runs, the trial stays "running" in the study
    killed_at = time.time()
    proc.communicate()

    # The next run finds its heartbeat stale (the grace period shortened from 3 minutes).
    # Optuna compares the database's clock (SQLite's: whole seconds) with the last heartbeat,
    # written before the kill: stale for sure once the clock's second is past
    # floor(killed_at) + grace. A wait to that instant, not a sleep racing the grace period.
    monkeypatch.setattr(study_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    time.sleep(max(0.0, math.floor(killed_at) + 2 - time.time()))
    monkeypatch.setenv("SCENES_CACHE", str(tmp_path / "cache"))
    assert main([*args, *sets()]) == 0
    killed, retried = read_trials(out)
    assert killed["state"] == "fail" and retried["state"] == "complete"
    assert retried["train.lr"] == killed["train.lr"]
    assert retried["augment.preset"] == killed["augment.preset"]
    assert len(read_trials(out)) == 2  # retried once, nothing else ran


def test_trials_of_two_processes_each_run_once_in_step(data, space, tmp_path):
    """Lightning starts a trial's second process by running `scenes tune` again: it joins
    each trial of the first process through the study, and stops when the study does."""
    out = tmp_path / "study"
    argv = [sys.executable, "-m", "scenes", "tune", "--data", str(data), "--space", str(space)]
    argv += ["--out", str(out), "--trials", "2"]
    argv += sets("train.devices=2", "train.accelerator=cpu", "train.strategy=ddp")
    env = {**os.environ, "SCENES_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("2 processes (2 per node") == 2  # each trial ran on both
    trials = read_trials(out)
    assert [t["state"] for t in trials] == ["complete", "complete"]
    for t in trials:
        with (Path(t["run_dir"]) / "metrics.csv").open() as fh:
            assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]
        assert (Path(t["run_dir"]) / "model" / "model.json").is_file()
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["000", "001"]


@pytest.mark.parametrize("mode, judged_from", [("fine_tune", 2), ("full", 1)])
def test_the_head_epochs_of_fine_tune_are_reported_but_never_pruned(mode, judged_from):
    from types import SimpleNamespace

    from scenes.tune.pruning import TrialPruning, unjudged_epochs

    class AlwaysPrune:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True

    cfg = load_config(sets=[f"train.mode={mode}", "train.head_epochs=1"])
    trial = AlwaysPrune()
    callback = TrialPruning(trial, "val_f1", unjudged_epochs(cfg))
    module = SimpleNamespace(epoch_summary={"val_f1": 0.5})
    stopped_at = None
    for epoch in range(3):
        trainer = SimpleNamespace(
            sanity_checking=False,
            current_epoch=epoch,
            is_global_zero=True,
            strategy=SimpleNamespace(broadcast=lambda value: value),
            max_epochs=3,
            should_stop=False,
        )
        callback.on_validation_end(trainer, module)
        if trainer.should_stop:
            stopped_at = epoch + 1
            break
    assert stopped_at == judged_from == callback.pruned_epoch
    assert trial.reported == [(e, 0.5) for e in range(1, judged_from + 1)]  # head epoch too
