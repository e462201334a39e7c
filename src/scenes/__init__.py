"""scenes: train, evaluate and serve image classifiers for scene photos.

The public names are imported on first use: ``import scenes`` (and so ``scenes --help``,
whose CLI lives in this package) must not pay for torch, Lightning and matplotlib up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": ".config",
    "ConfigError": ".errors",
    "load_config": ".config",
    "EvalResult": ".evaluation.outputs",
    "evaluate": ".evaluation.loop",
    "BundleMeta": ".models",
    "build_model": ".models",
    "load_bundle": ".models",
    "Predictor": ".serve.predictor",
    "TrainResult": ".training",
    "train": ".training",
}

__all__ = [  # literal, so linters and IDEs see the names; must equal _EXPORTS' keys (tested)
    "BundleMeta",
    "Config",
    "ConfigError",
    "EvalResult",
    "Predictor",
    "TrainResult",
    "build_model",
    "evaluate",
    "load_bundle",
    "load_config",
    "train",
]

if TYPE_CHECKING:
    from .config import Config, load_config
    from .errors import ConfigError
    from .evaluation.loop import evaluate
    from .evaluation.outputs import EvalResult
    from .models import BundleMeta, build_model, load_bundle
    from .serve.predictor import Predictor
    from .training import TrainResult, train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scenes' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
