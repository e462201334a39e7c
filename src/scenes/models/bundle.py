"""The deployable model bundle: ``model.safetensors`` + ``model.json``.

``model.json`` holds everything needed to rebuild the network and preprocess an image the way
training did (architecture, class names in index order, input size, normalisation), so
evaluation, prediction, the app and export need this folder and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .registry import build_model

BUNDLE_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@dataclass
class BundleMeta:
    backend: str
    architecture: str
    class_names: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    interpolation: str = "bilinear"
    resize: str = "squash"  # whole image resized to image_size x image_size
    head: str = ""
    channels_last: bool = True
    format: int = BUNDLE_FORMAT
    # What the backend needs to rebuild the network offline (the HF model config).
    backend_config: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def model_name(self) -> str:
        return f"{self.backend}:{self.architecture}"


def save_bundle(module: nn.Module, meta: BundleMeta, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": str(BUNDLE_FORMAT)})
    (directory / META_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    return directory


def resolve_bundle_dir(path: str | Path) -> Path:
    """Accept a bundle folder or a run directory holding ``model/``."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / META_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"no model bundle at {path}: expected {META_FILE} and {WEIGHTS_FILE} "
        f"in {path} or {path / 'model'} (written by `scenes train` at the end of a run)"
    )


def read_meta(path: str | Path) -> BundleMeta:
    raw = json.loads((resolve_bundle_dir(path) / META_FILE).read_text())
    if raw.get("format", 0) > BUNDLE_FORMAT:
        raise ValueError(f"{path}: bundle format {raw['format']} is newer than this scenes")
    known = BundleMeta.__dataclass_fields__
    return BundleMeta(**{k: v for k, v in raw.items() if k in known})


def load_bundle(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, BundleMeta]:
    """Rebuild the trained network from its bundle alone, in eval mode."""
    directory = resolve_bundle_dir(path)
    meta = read_meta(directory)
    built = build_model(
        meta.model_name,
        meta.num_classes,
        pretrained=False,
        image_size=meta.image_size,
        class_names=meta.class_names,
        backend_config=meta.backend_config,
    )
    built.module.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    module = built.module.to(device).eval()
    if meta.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module, meta
