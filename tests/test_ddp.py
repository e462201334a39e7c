"""Several processes (DDP on the CPU, gloo): a run completes with one set of outputs, its
validation metrics equal a one-process `scenes evaluate` of its bundle, a killed run resumes
to the same numbers (with its batches drawn on the device), and impossible setups are refused
before any data is read."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scenes.config import load_config
from scenes.errors import ConfigError
from scenes.evaluation.loop import evaluate
from scenes.training import train
from scenes.training.hardware import resolve_hardware

from conftest import make_folder, tiny_train_config

DRIVER = Path(__file__).with_name("ddp_driver.py")
TWO_CPU_PROCESSES = {
    "train.accelerator": "cpu",
    "train.devices": 2,
    "train.strategy": "ddp",
}
SMALL = {
    "data.image_size": 32,
    "data.batch_size": 4,
    "data.val_fraction": 0.25,
    "model.name": "resnet18",
    "model.pretrained": False,
    "train.epochs": 3,
    # A head epoch, then the backbone unfrozen: under DDP its gradients must be all-reduced
    # too, or the processes' copies drift apart and a resume from the first one's differs.
    "train.mode": "fine_tune",
    "train.head_epochs": 1,
    "train.progress_bar": False,
    "augment.preset": "classic",
    "augment.p": 0.5,
}


def rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def run(cmd: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCENES_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    env.pop("SCENES_RUN_DIR", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("ddp") / "data", ["cat_a", "cat_b", "cat_c"], 15)


@pytest.fixture(scope="module")
def cli_run(data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`scenes train --accelerator cpu --devices 2 --strategy ddp`, as the README shows it."""
    root = tmp_path_factory.mktemp("ddp-cli")
    argv = ["train", "--data", str(data), "--out", str(root / "run"), "--no-pretrained"]
    argv += ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    argv += ["--model", "resnet18", "--epochs", "3", "--image-size", "32", "--batch-size", "4"]
    for key in ("data.val_fraction", "train.progress_bar", "augment.preset", "augment.p"):
        argv += ["--set", f"{key}={SMALL[key]}"]
    done = run([sys.executable, "-m", "scenes", *argv], root / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run", done


def test_two_processes_write_one_run(cli_run):
    run_dir, done = cli_run
    assert [r["epoch"] for r in rows(run_dir)] == ["1", "2", "3"]
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == [
        "acceptance.safetensors",  # the reference features of "none of these"
        "model.json",
        "model.safetensors",
    ]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    out = done.stdout.splitlines()
    assert sum("train loss" in line for line in out) == 1  # one epoch table
    assert sum(line.strip().startswith("1 ") for line in out) == 1  # one row per epoch
    assert sum("best epoch" in line for line in out) == 1  # one summary
    assert "global batch 8 = 4 per device x 2 process(es) x 1 accumulated" in done.stdout
    with (run_dir / "split.csv").open() as fh:
        split = list(csv.DictReader(fh))
    assert len(split) == 45 and sum(r["split"] == "val" for r in split) == 11


def test_validation_metrics_equal_a_one_process_evaluation(cli_run):
    run_dir, _ = cli_run
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    best_row = rows(run_dir)[int(ckpt["epoch"])]
    result = evaluate(run_dir, split="val", out=False, device="cpu")
    assert result.num_images == 11  # 6 + 5 in training: every val image exactly once
    assert result.accuracy == pytest.approx(float(best_row["val_acc"]), abs=1e-6)
    assert result.macro_f1 == pytest.approx(float(best_row["val_f1"]), abs=1e-6)


def test_a_killed_two_process_run_resumes_to_the_same_numbers(data, cli_run, tmp_path):
    whole, _ = cli_run
    out = tmp_path / "broken"
    # This run draws its batches from images on the device (data.on_device), the CLI run used
    # DataLoaders: each process's shard and augmentation must be the same either way.
    config = {**SMALL, **TWO_CPU_PROCESSES, "data.on_device": True}
    overrides = json.dumps({**config, "data.dir": str(data), "out": str(out)})
    crashed = run([sys.executable, str(DRIVER), overrides, "--crash-at-epoch", "2"], tmp_path)
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr
    assert len(rows(out)) == 2
    resumed = run(
        [sys.executable, str(DRIVER), overrides, "--resume", str(out / "checkpoints/last.ckpt")],
        tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for a, b in zip(rows(whole), rows(out), strict=True):
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), key


def test_two_processes_train_from_one_stored_set_of_teacher_outputs(data, tmp_path, trained_run):
    # Both processes need every training image's answer (the shards change each epoch) and ask
    # under the cache folder's lock; the run completes with one stored set for all the rows.
    config = {
        **SMALL,
        **TWO_CPU_PROCESSES,
        "train.epochs": 1,
        "train.teacher": [str(trained_run)],
        "train.teacher_outputs": "cached",
    }
    overrides = json.dumps({**config, "data.dir": str(data), "out": str(tmp_path / "run")})
    done = run([sys.executable, str(DRIVER), overrides], tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    stored = list((tmp_path / "cache" / "teacher-outputs").glob("*.npy"))
    assert len(stored) == 1
    answers = np.load(stored[0])
    assert answers.shape == (34, 3) and np.isfinite(answers).all()  # 45 images less 11 val
    assert len(rows(tmp_path / "run")) == 1


def test_resume_with_another_process_count_is_refused(data, tmp_path):
    result = train(tiny_train_config(data, tmp_path / "one", **{"train.epochs": 1}))
    cfg = tiny_train_config(data, tmp_path / "one", **TWO_CPU_PROCESSES)
    with pytest.raises(ConfigError, match="trained by 1 process"):
        train(cfg, resume=result.run_dir / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train.strategy": "ddp", "train.devices": 1}, "runs one process per device"),
        ({"train.strategy": "dpp"}, "is not a Lightning strategy"),
        ({"train.strategy": "single_device", "train.devices": 2}, "uses one device"),
    ],
)
def test_impossible_setups_fail_before_any_data_is_read(tmp_path, overrides, message):
    cfg = tiny_train_config(tmp_path / "no-such-data", tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_more_gpus_than_the_machine_has_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    cfg = load_config(sets=["train.devices=4", "train.accelerator=cuda"])
    with pytest.raises(ConfigError, match="asks for 4 GPUs but this machine has 1"):
        resolve_hardware(cfg.train)
    cfg = load_config(sets=["train.devices=[0, 3]", "train.accelerator=cuda"])
    with pytest.raises(ConfigError, match=r"\[3\] do not exist"):
        resolve_hardware(cfg.train)
    hardware = resolve_hardware(load_config(sets=["train.accelerator=cuda"]).train)
    assert hardware.world_size == 1 and hardware.strategy == "auto"
    hardware = resolve_hardware(
        load_config(sets=["train.devices=2", "train.num_nodes=3", "train.accelerator=cpu"]).train
    )
    assert hardware.world_size == 6 and hardware.strategy == "ddp"
