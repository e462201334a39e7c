"""Lightning's two finders on a recipe: the learning rate (``scenes train --find-lr``) and,
on CUDA, the largest batch that fits (``data.batch_size: auto``).

Both run on the recipe's own data, model and module, in a scratch Trainer without loggers or
checkpoints; Lightning restores the weights after each search.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from .. import atomic, console
from ..config import Config
from ..data.loaders import SceneDataModule
from ..errors import ConfigError
from .hardware import Hardware, resolve_hardware

log = logging.getLogger(__name__)

# The batch the finder starts from and doubles (Lightning's "power" mode).
FIRST_BATCH = 16


@dataclass
class LrFinding:
    suggestion: float | None
    figure: Path
    table: Path
    steps: int


def scratch_trainer(hardware: Hardware, root: Path) -> L.Trainer:
    return L.Trainer(
        accelerator=hardware.accelerator,
        devices=1,
        precision=hardware.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
        max_epochs=1000,  # the finders stop on their own step counts
    )


def refuse_several_processes(hardware: Hardware, what: str) -> None:
    if hardware.world_size > 1:
        raise ConfigError(
            f"{what} runs in one process: use --devices 1 for it, then train on "
            f"{hardware.world_size} with the value it finds"
        )


def find_lr(cfg: Config, steps: int = 100) -> LrFinding:
    """Lightning's learning-rate range test over ``steps`` optimizer steps (exponentially from
    1e-7 to 1), plotted into RUN/figures/lr_find.png; nothing is applied to the config."""
    from lightning.pytorch.tuner import Tuner

    from .setup import set_up_run

    refuse_several_processes(resolve_hardware(cfg.train), "--find-lr")
    setup = set_up_run(cfg, None)
    trainer = scratch_trainer(setup.hardware, setup.run.path)
    with console.without_library_chatter():
        finding = Tuner(trainer).lr_find(
            setup.module,
            datamodule=SceneDataModule(setup.data, cfg),
            min_lr=1e-7,
            max_lr=1.0,
            num_training=steps,
            update_attr=False,
        )
    figures = setup.run.figures
    figures.mkdir(parents=True, exist_ok=True)
    figure = finding.plot(suggest=True, show=False)
    figure.axes[0].set_title(f"Learning-rate range test ({len(finding.results['lr'])} steps)")
    with atomic.replacing_path(figures / "lr_find.png") as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    table = setup.run.path / "lr_find.csv"
    with atomic.replacing(table, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(finding.results["lr"], finding.results["loss"]))
    return LrFinding(
        finding.suggestion(), figures / "lr_find.png", table, len(finding.results["lr"])
    )


def with_found_batch_size(cfg: Config, allow_cpu: bool = False, max_trials: int = 25) -> Config:
    """``cfg`` with ``data.batch_size: auto`` replaced by the largest batch that trains on
    this GPU (config.yaml then records the number, so a resume uses it)."""
    from lightning.pytorch.tuner import Tuner

    from .setup import set_up_run

    hardware = resolve_hardware(cfg.train)
    if hardware.accelerator != "cuda" and not allow_cpu:
        raise ConfigError(
            f"data.batch_size=auto finds the largest batch that fits in GPU memory; on "
            f"{hardware.accelerator} there is no such limit to find: give a number, e.g. "
            "--batch-size 32"
        )
    refuse_several_processes(hardware, "data.batch_size=auto")
    start = with_batch_size(cfg, FIRST_BATCH)
    with tempfile.TemporaryDirectory(prefix="scenes-batch-") as scratch:
        # A scratch run folder: the real one is written by the training that follows.
        probe = start.model_copy(update={"out": str(Path(scratch) / "run")})
        setup = set_up_run(probe, None)
        datamodule = SceneDataModule(setup.data, probe)
        with console.without_library_chatter():
            found = Tuner(scratch_trainer(setup.hardware, Path(scratch))).scale_batch_size(
                setup.module,
                datamodule=datamodule,
                mode="power",
                init_val=FIRST_BATCH,
                max_trials=max_trials,
                steps_per_trial=3,
            )
    found = int(found or FIRST_BATCH)
    log.info("data.batch_size=auto: %d fits on %s", found, hardware.describe())
    return with_batch_size(cfg, found)


def with_batch_size(cfg: Config, batch_size: int) -> Config:
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"batch_size": batch_size})})
