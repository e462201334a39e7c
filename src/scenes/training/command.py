"""``scenes train`` from the command line: the data fetched when missing, the run, and the
summary with the next commands. ``train()`` itself (``training/run.py``) prints only the
run's own lines and is what Python users call."""

from __future__ import annotations

import sys

from .. import console
from ..config import load_config
from ..errors import MissingPathError, TrainingInterrupted, UsageError
from ..rundir import RunDir
from .resume import checkpoint_to_resume


def run_train(
    config_path: str | None,
    overrides: dict,
    sets: list[str],
    resume: str | None,
    find_lr: bool = False,
) -> int:
    from ..data.download import download_intel
    from .run import train

    if find_lr and resume is not None:
        raise UsageError("--find-lr starts from the recipe, not a checkpoint: drop --resume")
    if resume is not None and overrides.get("model.init"):
        raise UsageError(
            "--init starts a new run from a run's weights; --resume continues a run where it "
            "stopped: give one of them"
        )
    if resume is not None:
        # A resumed run continues in its own folder (from any working directory), with the
        # config it was started with; what else is given may change only what
        # training/resume.py allows (checked by train()).
        resume = str(checkpoint_to_resume(resume))
        run = RunDir.of_checkpoint(resume)
        overrides = {"out": str(run.path), **overrides}
        if config_path is None and run.config.is_file():
            config_path = str(run.config)
    cfg = load_config(config_path, overrides, sets)
    data_dir = cfg.resolved_data_dir()
    if not data_dir.exists():
        if resume is not None:  # the run's images are the ones split.csv lists, not a download
            raise MissingPathError(
                f"data folder not found: {data_dir}; the resumed run needs the images its "
                "split.csv lists: give their folder with --data"
            )
        if not cfg.uses_default_data_dir():
            raise MissingPathError(
                f"data folder not found: {data_dir}; check the path given by --data (data.dir "
                "or $SCENES_DATA), or fetch the Intel dataset there with "
                f"`scenes data download --dest {data_dir}`"
            )
        print(f"data folder {data_dir} not found: downloading the Intel dataset with kagglehub")
        download_intel(data_dir)
    if find_lr:
        return report_lr_finding(cfg)
    try:
        result = train(cfg, resume=resume)
    except TrainingInterrupted as stop:
        if stop.is_global_zero:
            print(interrupted_message(stop), file=sys.stderr)
        return 130
    if not result.is_global_zero:  # the first process of a multi-process run reports
        return 0
    best = result.best
    run_dir = result.run_dir
    print(
        f"\nbest epoch {result.best_epoch} of {result.epochs_run}: val top-1 "
        f"{best.get('val_acc', float('nan')):.4f}, macro F1 {best.get('val_f1', float('nan')):.4f}, "
        f"val loss {best.get('val_loss', float('nan')):.4f}  ({console.duration(result.wall_time_s)})\n"
        f"run directory: {run_dir}  (model bundle: {run_dir / 'model'})\n"
        "next:\n"
        f"  scenes evaluate --run {run_dir} --split val   # or --data TEST_DIR\n"
        f"  scenes app --run {run_dir}\n"
        f"  scenes report --run {run_dir}"
    )
    return 0


def report_lr_finding(cfg) -> int:
    from .finders import find_lr

    finding = find_lr(cfg)
    where = f"range test of {finding.steps} steps: {finding.figure} (loss per lr: {finding.table})"
    if finding.suggestion is None:
        print(f"no suggestion: the loss never fell steadily; look at the curve. {where}")
        return 0
    phase = (
        " (the head phase: the backbone is frozen for train.head_epochs; the full phase "
        "trains at lr x train.unfreeze_lr_factor)"
        if cfg.train.mode == "fine_tune" and cfg.train.head_epochs > 0
        else ""
    )
    print(
        f"suggested learning rate {finding.suggestion:.3g}{phase}; not applied: train with "
        f"--set train.lr={finding.suggestion:.3g} (the recipe has {cfg.train.lr:g})\n{where}"
    )
    return 0


def interrupted_message(stop: TrainingInterrupted) -> str:
    lines = ["\nscenes train: interrupted"]
    if stop.bundle is not None:
        lines.append(
            f"model bundle written from the best epoch so far ({stop.best_epoch}): {stop.bundle}"
        )
    else:
        lines.append("no epoch had finished: there is no model to keep")
    if stop.resume_from is not None:
        lines.append(f"to continue: scenes train --resume {stop.resume_from}")
    return "\n".join(lines)
