"""The other processes of a multi-process trial (``train.devices`` > 1): Lightning starts them
by running ``scenes tune`` again; each joins, in step with the first process, every trial of
its group through the study, until the first process says the study is done."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import Config
from .pruning import TrialPruning, unjudged_epochs
from .space import Dimension
from .trials import GROUP_ENV, study_url, trial_config, trial_dir


def follow_trials(
    base: Config,
    dimensions: list[Dimension],
    out_dir: Path,
    storage: str | None,
    study_name: str,
    objective: str,
) -> int:
    """In a process Lightning started for a multi-process trial: run, in step with the first
    process, each trial of its group, until the first process says the study is done."""
    import optuna

    from ..training import train

    group = os.environ[GROUP_ENV]
    url = study_url(out_dir, storage)
    study = optuna.load_study(study_name=study_name, storage=url)
    parent, ran = os.getppid(), set()
    while os.getppid() == parent:
        trials = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("group") == group and t.number not in ran
        ]
        if trials:
            trial = min(trials, key=lambda t: t.number)
            ran.add(trial.number)
            params = {d.field: trial.params[d.field] for d in dimensions}
            cfg = trial_config(base, params, trial_dir(out_dir, trial.number), objective)
            train(cfg, extra_callbacks=[TrialPruning(None, objective, unjudged_epochs(cfg))])
        elif study.user_attrs.get(f"finished-{group}"):
            return 0
        else:
            time.sleep(0.5)
    return 0
