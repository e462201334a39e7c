"""Model registry (torchvision, timm, Hugging Face backends) and the deployable bundle.

Names are imported on first use, so ``scenes models`` (which reads ``models.listing``) does not
pay for torch when its cached listing suffices.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BundleMeta": ".meta",
    "load_bundle": ".bundle",
    "read_meta": ".bundle",
    "save_bundle": ".bundle",
    "BACKENDS": ".registry",
    "BuiltModel": ".base",
    "build_model": ".registry",
}
__all__ = [  # literal, so linters and IDEs see the names; must equal _EXPORTS' keys (tested)
    "BACKENDS",
    "BuiltModel",
    "BundleMeta",
    "build_model",
    "load_bundle",
    "read_meta",
    "save_bundle",
]

if TYPE_CHECKING:
    from .base import BuiltModel
    from .bundle import load_bundle, read_meta, save_bundle
    from .meta import BundleMeta
    from .registry import BACKENDS, build_model


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scenes.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
