"""scenes: train, evaluate and serve image classifiers for scene photos."""

from .config import Config, ConfigError, load_config
from .evaluation import EvalResult, evaluate
from .models import BundleMeta, build_model, load_bundle
from .predict import Predictor
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
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
