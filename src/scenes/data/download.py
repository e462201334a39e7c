"""Fetch the Intel Image Classification dataset with kagglehub into a plain layout.

Kaggle's archive nests every split twice (``seg_train/seg_train/<class>``); we copy it to
``DEST/train``, ``DEST/test`` and ``DEST/pred`` so the rest of the tool sees one layout.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..config import DEFAULT_DATA_DIR
from ..errors import DataError
from .discover import find_layout

KAGGLE_DATASET = "puneet6060/intel-image-classification"


def manual_steps(dest: Path) -> str:
    return (
        f"To use the data offline, put it in {dest} yourself:\n"
        f"  1. on a machine with internet, download https://www.kaggle.com/datasets/{KAGGLE_DATASET}\n"
        '     (or: python -c "import kagglehub; print(kagglehub.dataset_download'
        f"('{KAGGLE_DATASET}'))\")\n"
        f"  2. copy seg_train/seg_train/<class>/ to {dest}/train/<class>/ "
        f"(and seg_test/seg_test to {dest}/test, seg_pred/seg_pred to {dest}/pred),\n"
        f"     or unzip the archive into {dest} as it is: the nested layout is understood too\n"
        "  3. or point --data (or SCENES_DATA) at any folder of <class>/<images> folders"
    )


def normalise_kaggle_layout(source: Path, dest: Path) -> Path:
    """Copy each split of the Kaggle layout (``source/seg_X/seg_X``) to ``dest/X``."""
    layout = find_layout(source)
    if layout.name != "kaggle":
        raise DataError(f"{source} does not look like the Kaggle Intel dataset (no seg_train)")
    for split, folder in layout.splits.items():
        target = dest / split
        if not target.exists():
            shutil.copytree(folder, target)
    return dest


def download_intel(dest: str | Path) -> Path:
    """Download (or reuse kagglehub's cached copy) and lay it out under ``dest``."""
    dest = Path(dest)
    try:
        import kagglehub

        source = Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as exc:  # network, auth or kagglehub errors all lead to the manual path
        raise DataError(
            f"could not download {KAGGLE_DATASET} with kagglehub "
            f"({type(exc).__name__}: {str(exc)[:200]}).\n{manual_steps(dest)}"
        ) from exc
    return normalise_kaggle_layout(source, dest)


def run_data_download(dest: str | None) -> int:
    target = Path(dest or os.environ.get("SCENES_DATA") or DEFAULT_DATA_DIR)
    path = download_intel(target)
    print(f"dataset ready in {path}", file=sys.stdout)
    return 0
