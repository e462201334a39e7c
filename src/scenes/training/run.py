"""``train(cfg)``: data -> model -> Lightning Trainer -> run directory with a model bundle."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from .. import console
from ..config import Config
from ..data.loaders import SceneDataModule
from ..errors import (
    TrainingInterrupted,
)
from ..models.bundle import save_bundle, save_meta, save_reference
from ..models.meta import BundleMeta
from ..rundir import RunDir, epoch_of, read_checkpoint
from .calibrate import calibrate
from .figures import write_curve_figures
from .finders import with_found_batch_size
from .hardware import Hardware
from .loggers import publish_bundle
from .module import SceneClassifier
from .run_folder import handing_down
from .setup import RunSetup, bundle_meta, set_up_run  # noqa: F401  (bundle_meta: re-exported)
from .trainer import make_trainer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_epoch: int
    best: dict[str, float]  # metrics of the best epoch (validation split)
    epochs_run: int
    wall_time_s: float
    is_global_zero: bool = True  # False in the other processes of a multi-process run
    hardware: Hardware | None = None


def train(
    cfg: Config,
    resume: str | Path | None = None,
    extra_callbacks: list[L.Callback] | None = None,
) -> TrainResult:
    """Train as ``cfg`` says; with ``resume`` (a checkpoint, or a run folder: its
    ``checkpoints/last.ckpt``), continue that run exactly where it stopped. A resume that
    would compute another recipe (``training/resume.py``) or on changed files is refused.

    With several processes (``train.devices``/``num_nodes``) every process runs this; the
    first one alone writes the run directory's files and the model bundle.
    """
    started = time.perf_counter()
    if cfg.data.batch_size == "auto":
        cfg = with_found_batch_size(cfg)
    setup = set_up_run(cfg, resume)
    run, module, meta = setup.run, setup.module, setup.meta
    run_dir, hardware = run.path, setup.hardware
    if compiles(cfg.train.compile, hardware.accelerator):
        # In place: the state dict, hence checkpoints and the bundle, keep their keys.
        module.model.compile()
    trainer, _ = make_trainer(cfg, hardware, run_dir, extra_callbacks)
    with console.without_library_chatter(), handing_down(run_dir):
        try:
            trainer.fit(
                module,
                datamodule=SceneDataModule(setup.data, cfg),
                ckpt_path=str(setup.resume) if setup.resume else None,
                weights_only=True,  # data only, as read_checkpoint: it may come from elsewhere
            )
        except SystemExit:  # Lightning's answer to Ctrl-C: keep what was done, then stop
            if not trainer.interrupted:
                raise
            raise keep_interrupted_run(run, module, meta, trainer.is_global_zero) from None

    best_epoch, best = -1, {}
    if trainer.is_global_zero:  # checkpoints and metrics.csv are the first process's files
        best_epoch = write_best_bundle(run, module, meta)
        calibrated, reference = calibrate(module.model, meta, setup.data, cfg)
        save_meta(calibrated, run.bundle)
        if reference is not None:
            save_reference(reference, run.bundle)
        best = run.metrics_of_epoch(best_epoch)
        write_curve_figures(run)
        publish_bundle(trainer.loggers, run)
    # The other processes wait here, so none returns before the bundle exists.
    trainer.strategy.barrier("scenes-bundle-written")
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=run.best_checkpoint,
        best_epoch=best_epoch,
        best=best,
        epochs_run=trainer.current_epoch,
        wall_time_s=time.perf_counter() - started,
        is_global_zero=trainer.is_global_zero,
        hardware=hardware,
    )


def compiles(choice: bool | str, accelerator: str) -> bool:
    """train.compile: auto compiles on CUDA only (where it is known to pay; on the measured
    CPU it did not, see docs/results.md)."""
    return accelerator == "cuda" if choice == "auto" else bool(choice)


def write_best_bundle(run: RunDir, module: SceneClassifier, meta: BundleMeta) -> int:
    """The model bundle from the best checkpoint (what ``model/`` always holds); its epoch."""
    best_state = read_checkpoint(run.best_checkpoint)
    module.load_state_dict(best_state["state_dict"])
    save_bundle(module.model, meta, run.bundle)
    return epoch_of(best_state)


def keep_interrupted_run(
    run: RunDir, module: SceneClassifier, meta: BundleMeta, is_global_zero: bool
) -> TrainingInterrupted:
    """After Ctrl-C: the bundle from the best epoch so far, and where to resume from."""
    # Lightning ignores further Ctrl-C while it shuts down; give the caller (a notebook,
    # the next command) the usual behaviour back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not is_global_zero:
        return TrainingInterrupted(run.path, is_global_zero=False)
    bundle = best_epoch = None
    if run.best_checkpoint.is_file():
        best_epoch = write_best_bundle(run, module, meta)
        bundle = run.bundle
        write_curve_figures(run)
    resume_from = run.last_checkpoint if run.last_checkpoint.is_file() else None
    return TrainingInterrupted(run.path, bundle, best_epoch, resume_from)
