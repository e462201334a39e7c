"""What each CLI command does, callable from Python too; ``cli`` only parses arguments."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import DEFAULT_DATA_DIR, load_config


def run_train(config_path: str | None, overrides: dict, sets: list[str], resume: str | None) -> int:
    from .data.download import download_intel
    from .training import train

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


def run_data_download(dest: str | None) -> int:
    from .data.download import download_intel

    target = Path(dest or os.environ.get("SCENES_DATA") or DEFAULT_DATA_DIR)
    path = download_intel(target)
    print(f"dataset ready in {path}", file=sys.stdout)
    return 0
