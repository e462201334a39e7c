"""The experiment trackers of a run (``train.loggers``), through Lightning's own loggers.

Every logger receives what the module logs once per epoch (the numbers metrics.csv holds,
never a second computation) and the run's config as parameters. MLflow and W&B also get the
model bundle as an artifact at the end, and their run ids are kept in ``RUN/trackers.json``
so that ``scenes train --resume`` continues the same tracker run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from .. import atomic
from ..config import Config
from ..errors import ConfigError
from ..overrides import dotted
from ..rundir import RunDir

log = logging.getLogger(__name__)

EXTRAS = {"mlflow": ("mlflow", "scenes[mlflow]"), "wandb": ("wandb", "scenes[wandb]")}
MLFLOW_URI_ENV, MLFLOW_DEFAULT_DB = "MLFLOW_TRACKING_URI", "mlflow.db"


def flat_config(cfg: Config) -> dict:
    return dotted(cfg.model_dump(mode="json"))


def require(name: str) -> None:
    module, extra = EXTRAS[name]
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(
            f"train.loggers: {name} needs the {module} package: pip install '{extra}' (or drop "
            f"{name} from train.loggers)"
        ) from None


def mlflow_uri() -> str:
    """$MLFLOW_TRACKING_URI, else MLflow's own local default, a database in the working
    directory (its old ./mlruns file store is frozen, and MLflow 3 refuses it)."""
    return os.environ.get(MLFLOW_URI_ENV) or f"sqlite:///{Path(MLFLOW_DEFAULT_DB).resolve()}"


def check_loggers(cfg: Config) -> None:
    """Every tracker in train.loggers can start: a missing package or a tracking store that
    cannot be opened is the user's setting to fix (exit 2), found before any image is decoded."""
    for name in cfg.train.loggers:
        if name in EXTRAS:
            require(name)
    if "mlflow" in cfg.train.loggers:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = mlflow_uri()
        try:
            MlflowClient(uri)  # opens the tracking store, as the logger would
        except MlflowException as exc:
            source = f"${MLFLOW_URI_ENV}" if os.environ.get(MLFLOW_URI_ENV) else "the default"
            raise ConfigError(
                f"train.loggers: mlflow cannot open the tracking store {uri} (from {source}): "
                f"{str(exc).split('. ')[0]}. Set {MLFLOW_URI_ENV} to a database (e.g. "
                f"sqlite:///{MLFLOW_DEFAULT_DB}) or a tracking server (http://HOST:5000), or "
                f"unset it for sqlite:///{MLFLOW_DEFAULT_DB} in this folder; or drop mlflow "
                "from train.loggers"
            ) from None


def make_loggers(cfg: Config, run_dir: Path, first: bool) -> list:
    """Lightning loggers for train.loggers (csv is metrics.csv, written by the epoch table)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    run = RunDir(run_dir)
    saved = json.loads(run.trackers.read_text()) if run.trackers.is_file() else {}
    loggers = []
    for name in cfg.train.loggers:
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard", version=""))
        elif name == "mlflow":
            require(name)
            from lightning.pytorch.loggers import MLFlowLogger

            loggers.append(
                MLFlowLogger(
                    experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "scenes"),
                    run_name=run_dir.name,
                    tracking_uri=mlflow_uri(),
                    run_id=saved.get("mlflow"),
                )
            )
        elif name == "wandb":
            require(name)
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(
                WandbLogger(
                    project=os.environ.get("WANDB_PROJECT", "scenes"),
                    name=run_dir.name,
                    save_dir=str(run_dir),
                    id=saved.get("wandb"),
                    resume="allow" if saved.get("wandb") else None,
                )
            )
    if first:
        continued = {"MLFlowLogger": "mlflow", "WandbLogger": "wandb"}
        for logger in loggers:
            # A tracker run continued by a resume keeps the parameters it started with
            # (MLflow refuses changed values; config.yaml says what the resume changed).
            if not saved.get(continued.get(type(logger).__name__, "")):
                logger.log_hyperparams(flat_config(cfg))
        if any(n in cfg.train.loggers for n in EXTRAS):
            remember_ids(run, loggers)
    return loggers


def remember_ids(run: RunDir, loggers: list) -> None:
    ids = {}
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "MLFlowLogger":
            ids["mlflow"] = logger.run_id
        elif kind == "WandbLogger":
            ids["wandb"] = logger.experiment.id
    run.path.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run.trackers, json.dumps(ids, indent=2) + "\n")


def publish_bundle(loggers: list, run: RunDir) -> None:
    """The finished bundle as each tracker's artifact; the W&B run is closed (a next run in
    this process, e.g. a tune trial, would otherwise log into it)."""
    for logger in loggers:
        kind = type(logger).__name__
        try:
            if kind == "MLFlowLogger":
                logger.experiment.log_artifacts(logger.run_id, str(run.bundle), "model")
            elif kind == "WandbLogger":
                import wandb

                name = re.sub(r"[^\w.-]", "-", f"model-{run.path.name}")
                artifact = wandb.Artifact(name, type="model")
                artifact.add_dir(str(run.bundle))
                logger.experiment.log_artifact(artifact)
        except Exception as exc:  # a tracker's failure must not cost the finished run
            log.warning("could not log the bundle to %s: %s: %s", kind, type(exc).__name__, exc)
    close(loggers)


def close(loggers: list) -> None:
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
