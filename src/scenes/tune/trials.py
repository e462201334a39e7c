"""A trial's folder and config, shared by the study and the processes that follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from .space import apply

# Set for the processes Lightning starts for a multi-process trial: they run that trial only.
GROUP_ENV = "SCENES_TUNE_GROUP"


def trial_dir(out_dir: Path, number: int) -> Path:
    return out_dir / "trials" / f"{number:03d}"


def trial_config(base: Config, params: dict[str, Any], run: Path, objective: str) -> Config:
    return apply(base, params, **{"out": str(run), "train.monitor": objective})


def study_url(out_dir: Path, storage: str | None) -> str:
    """Where a study lives: the shared ``--storage`` database, else ``DIR/study.db``."""
    return storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
