"""``scenes tune``: Optuna studies over the training config, each trial a complete run."""
