"""``scenes export``: a file format (``serve/export.py``) or, with ``--format hf``, the folder
for the Hugging Face Hub (``folder.py``), uploaded with ``--push`` when the Hub is reachable."""

from __future__ import annotations

import logging
from pathlib import Path

from ..choices import CALIBRATION_IMAGES
from ..errors import UsageError
from ..outputs import output_dir
from ..serve.export import export_format

log = logging.getLogger(__name__)

HUB_FORMAT = "hf"


def push_folder(folder: Path, repo_id: str) -> int:
    """Upload ``folder`` to the Hub repository ``repo_id`` (made when missing); offline or
    refused, say so and name the folder to upload later (exit 1: the folder is written)."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except Exception as exc:  # offline, no token, no permission: the folder is kept
        print(
            f"could not upload to the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc)[:200]}).\nThe folder {folder} is complete: upload it later with "
            f"`hf upload {repo_id} {folder}` (after `hf auth login`)."
        )
        return 1
    print(f"uploaded {folder} to https://huggingface.co/{repo_id}")
    return 0


def run_export(
    run: str,
    fmt: str = "onnx",
    out: str | None = None,
    calibration: int = CALIBRATION_IMAGES,
    seed: int = 0,
    push: str | None = None,
) -> int:
    if fmt != HUB_FORMAT:
        if push:
            raise UsageError("--push uploads a Hugging Face Hub folder: use it with --format hf")
        return export_format(run, fmt, out, calibration, seed)
    from .folder import export_hub

    if out is None:
        raise UsageError("--format hf writes a folder: name it with --out DIR")
    folder = export_hub(run, output_dir(out))
    print(f"wrote {folder}: a model folder for the Hugging Face Hub (README.md is its card)")
    return push_folder(folder, push) if push else 0
