"""``scenes train`` from the command line: the data fetched when missing, the run, and the
summary with the next commands. ``train()`` itself (``training/run.py``) prints only the
run's own lines and is what Python users call."""

from __future__ import annotations

from pathlib import Path

from ..config import load_config


def run_train(config_path: str | None, overrides: dict, sets: list[str], resume: str | None) -> int:
    from ..data.download import download_intel
    from .run import train

    if config_path is None and resume is not None:
        # A resumed run continues with the config it was started with.
        saved = Path(resume).resolve().parent.parent / "config.yaml"
        config_path = str(saved) if saved.is_file() else None
    cfg = load_config(config_path, overrides, sets)
    data_dir = cfg.resolved_data_dir()
    if not data_dir.exists():
        print(f"data folder {data_dir} not found: downloading the Intel dataset with kagglehub")
        download_intel(data_dir)
    result = train(cfg, resume=resume)
    if not result.is_global_zero:  # the first process of a multi-process run reports
        return 0
    best = result.best
    run_dir = result.run_dir
    print(
        f"\nbest epoch {result.best_epoch} of {result.epochs_run}: val top-1 "
        f"{best.get('val_acc', float('nan')):.4f}, macro F1 {best.get('val_f1', float('nan')):.4f}, "
        f"val loss {best.get('val_loss', float('nan')):.4f}  ({result.wall_time_s / 60:.1f} min)\n"
        f"run directory: {run_dir}  (model bundle: {run_dir / 'model'})\n"
        "next:\n"
        f"  scenes evaluate --run {run_dir} --split val   # or --data TEST_DIR\n"
        f"  scenes app --run {run_dir}\n"
        f"  scenes report {run_dir}"
    )
    return 0
