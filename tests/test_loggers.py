"""train.loggers: MLflow (a local database, offline) and W&B (offline mode) receive the same
per-epoch numbers as metrics.csv, the config as parameters and the bundle as an artifact; a
resumed run continues the same tracker run."""

from __future__ import annotations

import json

import pytest

from scenes.config import load_config
from scenes.errors import ConfigError
from scenes.rundir import RunDir
from scenes.training import train

from conftest import make_folder, tiny_train_config

pytest.importorskip("mlflow")


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["a", "b", "c"], 12)


def test_mlflow_gets_metrics_csv_params_and_the_bundle_and_resume_continues_it(
    data, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts go to ./mlruns
    run_dir = tmp_path / "run"
    loggers = {"train.loggers": ["csv", "mlflow"], "model.name": "resnet18"}
    train(tiny_train_config(data, run_dir, **loggers))
    run_id = json.loads(RunDir(run_dir).trackers.read_text())["mlflow"]
    client = MlflowClient(uri)
    found = client.get_run(run_id)
    assert found.info.run_name == "run" and found.info.status == "FINISHED"
    assert found.data.params["train.lr"] == "0.003"
    assert found.data.params["model.name"] == "resnet18"
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/model.json", "model/model.safetensors"} <= artifacts

    def same_numbers():
        rows = RunDir(run_dir).read_metrics()
        for metric in ("val_loss", "val_acc", "val_f1", "train_loss", "lr", "time_s"):
            history = client.get_metric_history(run_id, metric)
            assert [m.value for m in history] == pytest.approx([r[metric] for r in rows])
        return len(rows)

    assert same_numbers() == 2
    assert not (run_dir / "tensorboard").exists()  # only what was asked for

    # resume for a third epoch: the same MLflow run gets it
    resumed = tiny_train_config(data, run_dir, **loggers, **{"train.epochs": 3})
    train(resumed, resume=RunDir(run_dir).last_checkpoint)
    assert json.loads(RunDir(run_dir).trackers.read_text())["mlflow"] == run_id
    assert same_numbers() == 3


def test_wandb_offline_gets_the_epoch_numbers_the_config_and_the_bundle(
    data, tmp_path, monkeypatch
):
    """Offline, W&B keeps its records in a binary file that only its service reads back: the
    calls into the wandb run are what is checked, and that the offline file was written."""
    wandb = pytest.importorskip("wandb")
    from wandb.sdk.wandb_run import Run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged, artifacts = [], []
    real_log, real_artifact = Run.log, Run.log_artifact

    def spy_log(self, data, *args, **kwargs):
        logged.append(dict(data))
        return real_log(self, data, *args, **kwargs)

    def spy_artifact(self, artifact, *args, **kwargs):
        artifacts.append(artifact)
        return real_artifact(self, artifact, *args, **kwargs)

    monkeypatch.setattr(Run, "log", spy_log)
    monkeypatch.setattr(Run, "log_artifact", spy_artifact)
    run_dir = tmp_path / "run"
    train(tiny_train_config(data, run_dir, **{"train.loggers": ["csv", "tensorboard", "wandb"]}))
    run_id = json.loads(RunDir(run_dir).trackers.read_text())["wandb"]
    (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id}")
    assert (offline / f"run-{run_id}.wandb").stat().st_size > 1000
    rows = RunDir(run_dir).read_metrics()
    for metric in ("val_loss", "val_acc", "val_f1", "train_loss", "lr", "time_s"):
        sent = [entry[metric] for entry in logged if metric in entry]
        assert sent == pytest.approx([r[metric] for r in rows]), metric
    (artifact,) = artifacts
    assert artifact.type == "model" and "model.json" in artifact.manifest.entries
    assert wandb.run is None  # closed: a next run in this process gets its own
    assert (run_dir / "tensorboard").is_dir()


@pytest.mark.parametrize(
    "loggers, says",
    [(["tensorboard"], "keep csv in the list"), (["csv", "csv"], "each logger once")],
)
def test_metrics_csv_cannot_be_turned_off(loggers, says):
    with pytest.raises(ConfigError, match=says):
        load_config(overrides={"train.loggers": loggers})


def test_a_logger_without_its_package_says_what_to_install(data, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ConfigError, match=r"pip install 'scenes\[wandb\]'"):
        train(tiny_train_config(data, tmp_path / "run", **{"train.loggers": ["csv", "wandb"]}))
