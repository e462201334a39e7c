"""What ``--resume`` may and may not change: a resumed run computes what the run it continues
started computing, on the same files, or it is refused before any work.

``RESUMABLE_CHANGES`` is the one list of config fields a resume may change; every other field
that differs from the run's ``config.yaml`` is refused, named with both values. ``split.csv``
records each file's size and modification time, and a file that changed or vanished since
refuses the resume too.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config, load_config
from ..console import plural
from ..errors import ConfigError, DataError, MissingPathError
from ..overrides import dotted
from ..rundir import RunDir, SplitRow

# The config fields a resume may change, each with why the result cannot change with it.
RESUMABLE_CHANGES = {
    "out": "where the run is: a resume writes into the checkpoint's own folder (checked apart)",
    "data.dir": "where the files are found: split.csv names the files, their sizes and "
    "modification times, and any other file is refused",
    "data.cache_dir": "decoded images are kept by content: any cache gives the same pixels",
    "data.num_workers": "how many processes load batches, not which ones",
    "data.on_device": "batches drawn on the device are the DataLoader's batches (tested)",
    "train.epochs": "how long the run goes on: the epochs done stay as they were (a cosine "
    "schedule is stretched to the new length from the resume on)",
    "train.devices": "which devices: their count (the process count) is checked apart",
    "train.num_nodes": "which machines: the process count is checked apart",
    "train.loggers": "where the same per-epoch numbers also go",
    "train.progress_bar": "what the console shows",
}


def checkpoint_to_resume(given: str | Path) -> Path:
    """The checkpoint ``--resume`` names: a run folder means its ``checkpoints/last.ckpt``."""
    path = Path(given)
    if path.is_dir():
        last = RunDir(path).last_checkpoint
        if not last.is_file():
            raise MissingPathError(
                f"--resume {given}: {last} not found; a run folder is resumed from its "
                "checkpoints/last.ckpt, which `scenes train` writes at the end of every epoch"
            )
        return last
    if not path.is_file():
        raise MissingPathError(
            f"--resume {given}: no such checkpoint or run folder; give a run folder or its "
            "checkpoints/last.ckpt"
        )
    return path


def check_same_recipe(run: RunDir, cfg: Config) -> None:
    """Refuse a resume whose config computes something else than the run's ``config.yaml``."""
    if not run.config.is_file():
        raise MissingPathError(
            f"{run.config} not found: the recipe the run was started with is unknown, so "
            "whether this resume continues it cannot be checked; start a new run"
        )
    saved = dotted(load_config(run.config).model_dump(mode="json"))
    now = dotted(cfg.model_dump(mode="json"))
    changed = [
        f"{key}: {saved.get(key)!r} in the run, {now.get(key)!r} now"
        for key in sorted(saved.keys() | now.keys())
        if key not in RESUMABLE_CHANGES and saved.get(key) != now.get(key)
    ]
    if changed:
        raise ConfigError(
            f"--resume continues the recipe in {run.config}, and this one differs: "
            + "; ".join(changed)
            + ". Resume without these changes, or start a new run with them (a resume may "
            f"change only {', '.join(RESUMABLE_CHANGES)})"
        )


def check_same_files(rows: list[SplitRow], split_csv: Path, shown: int = 3) -> None:
    """Refuse a resume when a file the run trains or validates on changed (size or
    modification time) or vanished since ``split.csv`` recorded it. Rows of an older
    split.csv, without size and time, are checked by the resume's path and label match only."""
    changed, vanished = [], []
    for row in rows:
        if row.split == "excluded" or row.size is None:  # left out on purpose, or not recorded
            continue
        try:
            stat = os.stat(row.path)
        except FileNotFoundError:
            vanished.append(row.path)
            continue
        if (stat.st_size, stat.st_mtime_ns) != (row.size, row.mtime_ns):
            changed.append(row.path)
    if changed or vanished:
        named = [f"{p} (changed)" for p in changed] + [f"{p} (vanished)" for p in vanished]
        more = f" and {len(named) - shown} more" if len(named) > shown else ""
        raise DataError(
            f"the data changed since the run started: {plural(len(changed), 'file')} listed "
            f"in {split_csv} changed (size or modification time) and {len(vanished)} vanished: "
            f"{', '.join(named[:shown])}{more}; resume with the data the run was started on, "
            "or start a new run"
        )
