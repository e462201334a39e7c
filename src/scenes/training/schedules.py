"""Learning-rate schedules as multipliers of the base LR, as a function of (fractional) epoch."""

from __future__ import annotations

import math
from collections.abc import Callable

from ..config_sections import TrainConfig


def warmup_cosine(epoch: float, length: float, warmup: float) -> float:
    """Linear warmup to 1 over ``warmup`` epochs, then cosine decay to 0 at ``length``."""
    if warmup > 0 and epoch < warmup:
        return max(epoch / warmup, 1e-3)
    span = max(length - warmup, 1e-9)
    progress = min(max((epoch - warmup) / span, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_multiplier(cfg: TrainConfig) -> Callable[[float], float]:
    """Multiplier for cosine/step/none. In fine_tune mode the head phase and the full phase
    each get their own schedule (the second one scaled by ``unfreeze_lr_factor``), like
    fitting a new head first and then fine-tuning everything gently."""
    phases = [(0.0, float(cfg.epochs), 1.0)]
    if cfg.mode == "fine_tune" and 0 < cfg.head_epochs < cfg.epochs:
        k = float(cfg.head_epochs)
        phases = [(0.0, k, 1.0), (k, cfg.epochs - k, cfg.unfreeze_lr_factor)]

    def multiplier(epoch: float) -> float:
        start, length, scale = next(p for p in reversed(phases) if epoch >= p[0])
        local = epoch - start
        if cfg.scheduler == "cosine":
            return scale * warmup_cosine(local, length, min(cfg.warmup_epochs, length / 2))
        if cfg.scheduler == "step":
            return scale * cfg.gamma ** math.floor(local / cfg.step_size)
        return scale

    return multiplier
