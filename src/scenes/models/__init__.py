"""Model registry (torchvision, and more backends) and the deployable bundle."""

from .bundle import BundleMeta, load_bundle, read_meta, save_bundle
from .registry import BACKENDS, BuiltModel, WeightsUnavailableError, build_model

__all__ = [
    "BACKENDS",
    "BuiltModel",
    "BundleMeta",
    "WeightsUnavailableError",
    "build_model",
    "load_bundle",
    "read_meta",
    "save_bundle",
]
