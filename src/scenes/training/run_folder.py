"""Which folder a run writes to, agreed by every process of the run.

A new run writes to ``out`` (``--out``), else to ``runs/<model>-<time>``; a resumed run writes
into the folder of the checkpoint it continues, wherever the command is run from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import Config
from ..errors import RunDirError
from ..rundir import RunDir

# How the first process tells the processes Lightning starts (which re-run the command)
# where the run is: set only while they are started, see ``handing_down``.
RUN_DIR_ENV = "SCENES_RUN_DIR"


def model_slug(cfg: Config) -> str:
    return cfg.model.name.replace(":", "-").replace("/", "-")


def default_run_dir(cfg: Config) -> Path:
    """``runs/<model>-<time>``, numbered when that folder exists (two runs in one second)."""
    base = Path("runs") / f"{model_slug(cfg)}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def agree_run_dir(cfg: Config, rank: int, world_size: int) -> Path:
    """The one run directory every process of a new run writes to or reads from.

    Named by ``--out``; else by the default time-stamped name, which a single process, or the
    first process before Lightning starts the others, picks and hands down (``handing_down``).
    Processes started by torchrun or SLURM all start at once and could disagree on a time
    stamp, so they use the launcher's job id, or need ``--out``.
    """
    if cfg.out:
        return Path(cfg.out)
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    launched = os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
    if world_size > 1 and launched and launched != "none":
        return Path("runs") / f"{model_slug(cfg)}-job{launched}"
    if world_size > 1 and rank != 0:
        raise RunDirError(
            "the processes of this run cannot agree on a run directory: pass --out RUN_DIR"
        )
    return default_run_dir(cfg)


def new_run_dir(cfg: Config, rank: int, world_size: int) -> Path:
    run_dir = agree_run_dir(cfg, rank, world_size)
    if RunDir(run_dir).holds_a_run():
        raise RunDirError(
            f"{run_dir} already holds a run; choose another --out, or continue it with "
            f"--resume {RunDir(run_dir).last_checkpoint}"
        )
    return run_dir


def resume_run_dir(cfg: Config, checkpoint: Path) -> Path:
    """The folder of the run ``checkpoint`` belongs to. ``out`` may name it (from any working
    directory) or be left out; naming another folder is refused: a resumed run continues its
    own metrics.csv and checkpoints, it cannot move them elsewhere."""
    run = RunDir.of_checkpoint(checkpoint).path
    if cfg.out and Path(cfg.out).resolve() != run:
        raise RunDirError(
            f"--resume {checkpoint} continues the run in {run}, but out={cfg.out} names another "
            "folder: leave out --out (a resumed run writes into its own folder), or start a "
            "new run without --resume"
        )
    return run


@contextmanager
def handing_down(run_dir: Path) -> Iterator[None]:
    """While the block runs, processes started from this one find ``run_dir`` in their
    environment; afterwards the caller's environment is as it was (a second ``train()`` in a
    notebook must not reuse the first run's folder)."""
    old = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = old
