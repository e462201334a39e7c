"""Local weight files: a folder searched by each file's official name before anything is
downloaded, so a machine without internet trains from pretrained weights placed by hand.

The folders are ``model.weights_dir`` (``--set model.weights_dir=DIR``) and then
``$SCENES_WEIGHTS_DIR`` (several, separated by ``os.pathsep``). What is looked for there:

- torchvision: the file name of the weights' URL, e.g. ``mobilenet_v2-b0353104.pth``, whose
  content must match the hash prefix in that name (torchvision's naming), and then
  ``$TORCH_HOME/hub/checkpoints/`` (torchvision's own cache);
- timm: the file name of the weights' URL, or ``<hf_hub_id>/model.safetensors`` (the hub's
  repository layout, e.g. ``timm/convnext_tiny.in12k_ft_in1k/model.safetensors``); timm's own
  Hugging Face cache is used as before;
- Hugging Face: a folder ``<model id>/`` written by ``save_pretrained`` (e.g.
  ``google/vit-base-patch16-224/``); the Hugging Face cache is used as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..data.files import file_sha256
from ..errors import MissingPathError, UnsafeFileError, UsageError, WeightsUnavailableError

ENV = "SCENES_WEIGHTS_DIR"
# torchvision names its files <name>-<first hex digits of the SHA-256>.<ext>
HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def weights_dirs(configured: str | Path | None = None) -> list[Path]:
    """The folders to search, in order: the config's, then $SCENES_WEIGHTS_DIR's."""
    folders = [Path(configured)] if configured else []
    folders += [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    return folders


def find_local(relative: str | Path, folders: list[Path]) -> Path | None:
    """The first ``folder/relative`` that exists."""
    for folder in folders:
        candidate = folder / relative
        if candidate.exists():
            return candidate
    return None


def check_hash_in_name(path: Path, what: str, url: str) -> None:
    """A file named like an official torchvision file must hold that file: its SHA-256 must
    start with the digits in its name (otherwise it is another file under a borrowed name)."""
    match = HASH_IN_NAME.search(path.name)
    if match is None:
        return
    digest = file_sha256(path)
    if not digest.startswith(match.group(1)):
        raise WeightsUnavailableError(
            f"{path} has the name of {what} but not its content (its SHA-256 starts with "
            f"{digest[:8]}, the name says {match.group(1)}): replace it with the "
            f"file from {url}, or remove it"
        )


def load_state_file(path: str | Path) -> dict:
    """A state dict from .safetensors or a torch file, read as data: tensors and plain
    containers only (``weights_only=True``, said here rather than left to a library's
    default); a file that holds more is refused with ``UnsafeFileError`` before it can run."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"{path} holds more than tensors and plain data (a pickle that could run code "
            "when loaded), so it was not loaded; use a .safetensors file or weights you trust "
            f"({str(exc).splitlines()[0][:160]})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UsageError(f"{path} does not hold a state dict")
    return state
