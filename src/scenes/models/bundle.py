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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from ..atomic import write_bytes
from ..data.files import file_sha256
from ..errors import BundleError, MissingPathError
from ..rundir import BUNDLE_DIR
from .meta import BUNDLE_FORMAT, BundleMeta

if TYPE_CHECKING:
    import torch
    from torch import nn


WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
ACCEPTANCE_FILE = "acceptance.safetensors"  # reference features of the k-NN acceptance


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<file>"
        got = repr(e.get("input"))
        lines.append(f"  {field}: {e['msg']} (got {got[:80]})")
    return "\n".join(lines)


def save_bundle(module: nn.Module, meta: BundleMeta, directory: str | Path) -> Path:
    from safetensors.torch import save as safetensors_bytes

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    weights = safetensors_bytes(state, metadata={"format": str(meta.format)})
    write_bytes(directory / WEIGHTS_FILE, weights)
    save_meta(meta, directory)
    return directory


def save_meta(meta: BundleMeta, directory: str | Path) -> None:
    """``model.json`` alone (calibration after training rewrites it; the weights stay)."""
    text = json.dumps(meta.model_dump(mode="json"), indent=2) + "\n"
    write_bytes(Path(directory) / META_FILE, text.encode())


def save_reference(features: np.ndarray, directory: str | Path) -> None:
    """The acceptance's reference features, as safetensors (data, readable without torch)."""
    from safetensors.numpy import save

    data = save({"features": np.ascontiguousarray(features, dtype=np.float16)})
    write_bytes(Path(directory) / ACCEPTANCE_FILE, data)


def load_reference(directory: str | Path) -> np.ndarray:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(directory) / ACCEPTANCE_FILE
    try:
        features = load_file(str(path))["features"]
    except (OSError, KeyError, SafetensorError) as exc:
        raise BundleError(
            f"{path}: the acceptance of unknown photos needs its reference features "
            f"({type(exc).__name__}: {str(exc)[:120]}); retrain, or use --accept-all"
        ) from None
    if features.ndim != 2 or not len(features):
        raise BundleError(f"{path} does not hold a (images, features) array")
    return features.astype(np.float32)


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


def weights_digest(run_or_bundle: str | Path) -> str:
    """SHA-256 of the bundle's ``model.safetensors``: which weights an export is made from, and
    which teacher gave cached answers."""
    return file_sha256(resolve_bundle_dir(run_or_bundle) / WEIGHTS_FILE)


def answers_digest(run_or_bundle: str | Path) -> str:
    """Which answers the bundle serves: its weights digest with ``model.json`` (temperature,
    thresholds, acceptance settings) and the acceptance's reference features; the export files
    beside them do not change it."""
    import hashlib

    directory = resolve_bundle_dir(run_or_bundle)
    digest = hashlib.sha256(weights_digest(directory).encode())
    for name in (META_FILE, ACCEPTANCE_FILE):
        if (directory / name).is_file():
            digest.update(f"|{name}|{file_sha256(directory / name)}".encode())
    return digest.hexdigest()


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


HF_PREFIX = "hf."  # HFLogits keeps the transformers model as .hf


def _transformers_state(directory: Path) -> dict:
    """A Hub folder of an hf model holds its weights as transformers saves them (checkpoint
    names, which transformers maps to the model's own when it loads them: hub/folder.py);
    safetensors only, never a pickle."""
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(
        str(directory), local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    return {HF_PREFIX + k: v for k, v in model.state_dict().items()}


def load_bundle(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, BundleMeta]:
    """Rebuild the trained network from its bundle alone, in eval mode."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .ensemble import build_network

    directory = resolve_bundle_dir(path)
    meta = read_meta(directory)
    network = build_network(meta)
    try:
        state = load_file(str(directory / WEIGHTS_FILE))
        if meta.backend == "hf" and not any(k.startswith(HF_PREFIX) for k in state):
            state = _transformers_state(directory)
        network.load_state_dict(state)
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise BundleError(
            f"{directory / WEIGHTS_FILE} does not hold the weights of {meta.model_name} with "
            f"{meta.num_classes} classes that {META_FILE} describes: {str(exc)[:300]}"
        ) from None
    module = network.to(device).eval()
    if meta.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module, meta
