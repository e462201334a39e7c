"""Stopping a trial that is clearly worse, from the validation metric of each epoch.

Optuna's pruner decides; this callback reports to it the number the epoch table prints (the
module's ``epoch_summary``, never a second computation) and, when told to prune, lets the
epoch finish and stops there, so the pruned trial still gets its bundle and checkpoints.

The head-only epochs of ``fine_tune`` are reported but never judged: how fast a head learns on
a frozen backbone says little of the whole network's result (in the first CPU study, trials
stopped at the head epoch were ahead of the eventual best one there).
"""

from __future__ import annotations

import lightning as L


class TrialPruning(L.Callback):
    def __init__(self, trial, objective: str, unjudged_epochs: int = 0):
        self.trial = trial  # None in the other processes of a multi-process trial
        self.objective = objective
        self.unjudged_epochs = unjudged_epochs
        self.pruned_epoch: int | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not pl_module.epoch_summary:
            return
        epoch = trainer.current_epoch + 1  # numbered as metrics.csv
        prune = False
        if trainer.is_global_zero and self.trial is not None:
            self.trial.report(pl_module.epoch_summary[self.objective], epoch)
            prune = epoch > self.unjudged_epochs and self.trial.should_prune()
        # The first process decides for all: each stops after the same epoch.
        if trainer.strategy.broadcast(prune) and epoch < trainer.max_epochs:
            self.pruned_epoch = epoch
            trainer.should_stop = True


def unjudged_epochs(cfg) -> int:
    """The head-only epochs of ``fine_tune``: pruning waits for the full network's first."""
    return cfg.train.head_epochs if cfg.train.mode == "fine_tune" else 0
