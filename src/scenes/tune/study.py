"""``scenes tune``: an Optuna study whose trials are complete ``scenes train`` runs.

Each trial trains into ``DIR/trials/NNN`` (its own config.yaml, metrics.csv, checkpoints and
bundle: evaluate, serve or resume it like any run). The study lives in ``DIR/study.db``, so the
same command run again continues it; ``--storage`` names a shared database instead, where
several machines run trials of one study at once (Optuna's own distributed mode).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from .. import console
from ..config import Config, load_config
from ..errors import ConfigError, TrainingInterrupted, UsageError
from ..rundir import lower_is_better
from ..training.hardware import resolve_hardware
from .outputs import write_outputs
from .pruning import TrialPruning, unjudged_epochs
from .space import Dimension, apply, load_space
from .trials import GROUP_ENV, study_url, trial_config, trial_dir

log = logging.getLogger(__name__)

STUDY_NAME = "scenes"


def direction_of(objective: str) -> str:
    return "minimize" if lower_is_better(objective) else "maximize"


def run_tune(
    config: str | None,
    overrides: dict,
    space: str | None,
    trials: int,
    timeout: float | None,
    objective: str,
    out: str,
    storage: str | None,
    study_name: str,
    prune: bool,
    sets: list[str],
) -> int:
    import optuna

    out_dir = Path(out)
    base, dimensions = tune_config(config, overrides, sets, objective, space)
    if GROUP_ENV in os.environ and os.environ.get("LOCAL_RANK", "0") != "0":
        from .processes import follow_trials

        return follow_trials(base, dimensions, out_dir, storage, study_name, objective)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(out_dir, storage, study_name, objective, base.seed, prune)
    done = len(finished(study))
    print(
        f"study {study.study_name!r} in {study_location(out_dir, storage)}: {done} of "
        f"{trials} trials done; objective {objective} ({direction_of(objective)}), "
        f"pruning {'on' if prune else 'off'}\nsearch space ({space or 'the default'}):\n"
        + "\n".join(f"  {d.describe()}" for d in dimensions)
    )
    retry_interrupted(study)
    status = 0
    if trials - done <= 0:
        print(f"the study already has {done} finished trials: raise --trials to run more")
    else:
        objective_fn = TrialObjective(base, dimensions, out_dir, objective, trials)
        status = run_trials(study, objective_fn, trials - done, timeout)
    write_outputs(study, out_dir, objective, dimensions)
    return status


def tune_config(config, overrides, sets, objective: str, space: str | None):
    """The base config every trial starts from, and the search space over it."""
    base = load_config(config, overrides, sets)
    base = apply(base, {}, **{"train.monitor": objective})  # refuses val_map on one-label data
    dimensions = load_space(space, base)
    if base.train.num_nodes != 1:
        raise ConfigError(
            "scenes tune: a trial runs on one machine (train.num_nodes=1); to use several, run "
            "the same command on each with one shared --storage"
        )
    return base, dimensions


def run_trials(study, objective_fn: TrialObjective, remaining: int, timeout) -> int:
    """Run trials until the study holds ``objective_fn.total`` finished ones; 130 on Ctrl-C."""
    import optuna

    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    stop_at_total = optuna.study.MaxTrialsCallback(objective_fn.total, states=finished_states)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(
                objective_fn,
                n_trials=remaining,
                timeout=timeout,
                callbacks=[stop_at_total, objective_fn.progress],
            )
    except TrainingInterrupted:
        print(
            "\nscenes tune: interrupted; the study keeps every finished trial. Run the same "
            "command again to continue (the interrupted trial is retried with the same "
            "parameters).",
            flush=True,
        )
        return 130
    finally:
        if objective_fn.group is not None:
            study.set_user_attr(f"finished-{objective_fn.group}", True)
    return 0


# A running trial's process writes a heartbeat this often; a trial whose last one is older
# than the grace period belongs to a killed process (noticed when a trial next starts).
HEARTBEAT_S, GRACE_S = 60, 180


def open_study(out_dir: Path, storage: str | None, name: str, objective: str, seed: int, prune):
    import optuna

    url = study_url(out_dir, storage)
    # A heartbeat marks the trials of a killed process as failed; they are then retried once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )
    study = optuna.create_study(
        storage=rdb,
        study_name=name,
        direction=direction_of(objective),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=make_pruner(prune),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction_of(objective):
        raise ConfigError(
            f"the study {name!r} was started to {study.direction.name.lower()} another "
            f"objective than {objective}: use its --objective, or another --out/--study-name"
        )
    saved = study.user_attrs.get("objective")
    if saved is not None and saved != objective:
        raise ConfigError(
            f"the study {name!r} tunes {saved}, not {objective}: use --objective {saved}, or "
            "another --out/--study-name"
        )
    study.set_user_attr("objective", objective)
    return study


def make_pruner(prune: bool):
    """Median pruning: after 3 finished trials, a trial whose epoch is worse than the median
    of the others at that epoch stops there."""
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)


def study_location(out_dir: Path, storage: str | None) -> str:
    return storage.split("@")[-1] if storage else str(out_dir / "study.db")


def finished(study) -> list:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def retry_interrupted(study) -> None:
    """A trial stopped by Ctrl-C is queued again with the same parameters, once."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if (
            t.state == optuna.trial.TrialState.FAIL
            and t.user_attrs.get("interrupted")
            and t.number not in retried
        ):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            print(f"trial {t.number} was interrupted: queued again with its parameters")


class TrialObjective:
    """One trial: the parameters Optuna suggests, a complete training run, its objective."""

    def __init__(
        self, base: Config, dimensions: list[Dimension], out_dir: Path, objective: str, total: int
    ):
        self.base, self.dimensions, self.out_dir = base, dimensions, out_dir
        self.objective, self.total = objective, total
        self.started: dict[int, float] = {}
        self.group: str | None = None  # set when trials run in several processes

    def __call__(self, trial) -> float:
        import optuna

        from ..training import train

        params = {d.field: d.suggest(trial) for d in self.dimensions}
        run = trial_dir(self.out_dir, trial.number)
        cfg = trial_config(self.base, params, run, self.objective)
        trial.set_user_attr("run_dir", str(run))
        self.started[trial.number] = time.perf_counter()
        print(
            f"\ntrial {trial.number}: "
            + ", ".join(f"{k}={format_value(v)}" for k, v in params.items()),
            flush=True,
        )
        if resolve_hardware(cfg.train).world_size > 1:
            self.share_with_processes(trial)
        pruning = TrialPruning(trial, self.objective, unjudged_epochs(cfg))
        try:
            result = train(cfg, extra_callbacks=[pruning])
        except TrainingInterrupted:
            trial.set_user_attr("interrupted", True)
            raise
        value = result.best.get(self.objective)
        if value is None:
            raise UsageError(f"trial {trial.number}: no {self.objective} in {run}/metrics.csv")
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs_run", result.epochs_run)
        if pruning.pruned_epoch is not None:
            trial.set_user_attr("pruned_epoch", pruning.pruned_epoch)
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_epoch}")
        return float(value)

    def share_with_processes(self, trial) -> None:
        """Lightning starts the other processes of a multi-process trial by running this
        command again; they find the trial to join through the study (``follow_trials``)."""
        if self.group is None:
            self.group = uuid.uuid4().hex
            os.environ[GROUP_ENV] = self.group  # inherited by the processes Lightning starts
        trial.set_user_attr("group", self.group)

    def progress(self, study, trial) -> None:
        """The line printed after each trial."""
        done = len(finished(study))
        took = console.duration(time.perf_counter() - self.started.get(trial.number, 0.0))
        if trial.state.name == "COMPLETE":
            outcome = f"{self.objective} {trial.value:.4f}"
        elif trial.state.name == "PRUNED":
            outcome = f"pruned after epoch {trial.user_attrs.get('pruned_epoch')}"
        else:
            outcome = trial.state.name.lower()
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no finished trial yet"
        print(
            f"trial {trial.number} ({done}/{self.total} done): {outcome} in {took}; {best}",
            flush=True,
        )


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
