"""The deployable model bundle: ``model.safetensors`` + ``model.json``.

``model.json`` holds everything needed to rebuild the network and preprocess an image the way
training did (architecture, class names in index order, input size, normalisation), so
evaluation, prediction, the app and export need this folder and nothing else.

Reading ``model.json`` imports no torch (a refused ``--run`` answers at once); loading the
weights does. A bundle may come from anyone, so it is read as data: the weights from safetensors (no
pickle), and ``model.json`` validated field by field (``BundleMeta``) before anything is built
from it; a value that cannot be right is refused naming the field.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ..data.images import RESAMPLING
from ..errors import BundleError, MissingPathError
from ..rundir import BUNDLE_DIR

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .base import BuiltModel

BUNDLE_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"

Interpolation = Literal[tuple(RESAMPLING)]  # type: ignore[valid-type]


class BundleMeta(BaseModel):
    """What ``model.json`` holds, with the values a trained scenes model can have."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["torchvision", "timm", "hf"]
    architecture: str = Field(min_length=1, max_length=500)
    class_names: list[str] = Field(min_length=2, max_length=100_000)
    image_size: int = Field(ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    interpolation: Interpolation = "bilinear"
    resize: Literal["squash"] = "squash"  # whole image resized to image_size x image_size
    head: str = Field("", max_length=500)
    channels_last: bool = True
    format: int = Field(BUNDLE_FORMAT, ge=1, le=BUNDLE_FORMAT)
    # What the backend needs to rebuild the network offline (the HF model config).
    backend_config: dict | None = None

    @field_validator("class_names")
    @classmethod
    def _names_distinct(cls, names: list[str]) -> list[str]:
        if any(not n.strip() for n in names):
            raise ValueError("class names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("class names must be distinct")
        return names

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) and abs(v) < 1e4 for v in values):
            raise ValueError("values must be finite numbers")
        return values

    @field_validator("std")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values):
            raise ValueError("standard deviations must be greater than 0")
        return values

    @model_validator(mode="after")
    def _rebuildable_offline(self) -> BundleMeta:
        # Without its config an hf bundle could only be rebuilt from the Hub: a download
        # of whatever the architecture names, not the model that was trained.
        if self.backend == "hf" and not self.backend_config:
            raise ValueError("an hf bundle needs backend_config (the model's config)")
        return self

    @classmethod
    def of(
        cls,
        built: BuiltModel,
        class_names: list[str],
        image_size: int,
        channels_last: bool = True,
    ) -> BundleMeta:
        """The description of ``built`` trained on ``class_names`` at ``image_size``."""
        return cls(
            backend=built.backend,
            architecture=built.architecture,
            class_names=list(class_names),
            image_size=image_size,
            mean=list(built.mean),
            std=list(built.std),
            interpolation=built.interpolation,
            head=built.head,
            channels_last=channels_last,
            backend_config=built.backend_config,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def model_name(self) -> str:
        return f"{self.backend}:{self.architecture}"


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<file>"
        got = repr(e.get("input"))
        lines.append(f"  {field}: {e['msg']} (got {got[:80]})")
    return "\n".join(lines)


def _write_atomically(path: Path, data: bytes) -> None:
    """Through a temporary name, so a reader never sees half a file; created by ``open``, so
    its permissions follow the umask like every other output."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_bundle(module: nn.Module, meta: BundleMeta, directory: str | Path) -> Path:
    from safetensors.torch import save as safetensors_bytes

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    weights = safetensors_bytes(state, metadata={"format": str(BUNDLE_FORMAT)})
    _write_atomically(directory / WEIGHTS_FILE, weights)
    text = json.dumps(meta.model_dump(mode="json"), indent=2) + "\n"
    _write_atomically(directory / META_FILE, text.encode())
    return directory


def resolve_bundle_dir(path: str | Path) -> Path:
    """Accept a bundle folder or a run directory holding ``model/``."""
    path = Path(path)
    if path.is_file():
        hint = ""
        if path.suffix == ".ckpt" and path.parent.name == "checkpoints":
            hint = f"; its run is {path.parent.parent}"
        elif path.name in (META_FILE, WEIGHTS_FILE):
            hint = f"; its bundle is {path.parent}"
        raise MissingPathError(
            f"{path} is a file: --run takes a run directory or its model/ folder{hint}"
        )
    for candidate in (path, path / BUNDLE_DIR):
        if (candidate / META_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    raise MissingPathError(
        f"no model bundle at {path}: expected {META_FILE} and {WEIGHTS_FILE} "
        f"in {path} or {path / BUNDLE_DIR} (written by `scenes train` at the end of a run)"
    )


def bundle_run_dir(path: str | Path) -> Path:
    """The folder that holds a bundle's outputs (eval/, explain/, label_issues/): the run for
    ``RUN`` or ``RUN/model``, the bundle folder itself for a bundle standing alone."""
    bundle = resolve_bundle_dir(path)
    return bundle.parent if bundle.name == BUNDLE_DIR else bundle


def read_meta(path: str | Path) -> BundleMeta:
    """``model.json`` of a bundle (or of a run's ``model/``), validated."""
    file = resolve_bundle_dir(path) / META_FILE
    try:
        raw = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{file} must hold a JSON object, got {type(raw).__name__}")
    version = raw.get("format", BUNDLE_FORMAT)
    if isinstance(version, int) and version > BUNDLE_FORMAT:  # before its fields: they may be new
        raise BundleError(
            f"{file}: bundle format {version} is newer than this scenes understands "
            f"({BUNDLE_FORMAT}): upgrade scenes"
        )
    try:
        return BundleMeta.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(
            f"{file} holds values a scenes model cannot have:\n{_describe(exc)}"
        ) from None


def load_bundle(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, BundleMeta]:
    """Rebuild the trained network from its bundle alone, in eval mode."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .registry import build_model

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
    try:
        built.module.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise BundleError(
            f"{directory / WEIGHTS_FILE} does not hold the weights of {meta.model_name} with "
            f"{meta.num_classes} classes that {META_FILE} describes: {str(exc)[:300]}"
        ) from None
    module = built.module.to(device).eval()
    if meta.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module, meta
