"""Find the train (and test) image folders of a dataset and the class names.

Accepted layouts, tried in this order:
  DIR/train/<class>/*            (+ DIR/test/<class>/*)
  DIR/seg_train/seg_train/<class>/*  (+ DIR/seg_test/seg_test/<class>/*)  -- Kaggle's Intel zip
  DIR/<class>/*                  (bare: everything is training data)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Layout:
    root: Path
    train_dir: Path
    test_dir: Path | None
    name: str  # which layout matched: "train", "kaggle" or "bare"


@dataclass(frozen=True)
class LabelledFiles:
    paths: list[Path]
    labels: list[int]
    class_names: list[str]


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_layout(root: str | Path) -> Layout:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    candidates = [
        ("train", root / "train", root / "test"),
        ("kaggle", root / "seg_train" / "seg_train", root / "seg_test" / "seg_test"),
    ]
    for name, train_dir, test_dir in candidates:
        if train_dir.is_dir():
            return Layout(root, train_dir, test_dir if test_dir.is_dir() else None, name)
    return Layout(root, root, None, "bare")


def list_labelled_files(folder: str | Path, class_names: list[str] | None = None) -> LabelledFiles:
    """Images under ``folder/<class>/`` (recursively), labelled by sorted class name.

    With ``class_names`` given (e.g. a trained model's), labels follow that order instead, and a
    folder whose class is not among them is an error.
    """
    folder = Path(folder)
    dirs = class_dirs(folder)
    if not dirs:
        raise DataError(
            f"{folder} has no class folders: expected {folder}/<class>/<image files> "
            "(or a train/ or seg_train/seg_train/ folder holding them)"
        )
    found = [d.name for d in dirs]
    if class_names is None:
        class_names = found
    else:
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise DataError(
                f"{folder} has class folders the model does not know: {', '.join(unknown)}; "
                f"known classes: {', '.join(class_names)}"
            )
    index = {name: i for i, name in enumerate(class_names)}
    paths: list[Path] = []
    labels: list[int] = []
    empty = []
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if is_image_file(p))
        if not files:
            empty.append(d)
        paths.extend(files)
        labels.extend([index[d.name]] * len(files))
    if empty:
        raise DataError(
            "class folders with no images: "
            + ", ".join(str(d) for d in empty)
            + f" (image types: {', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove them"
        )
    return LabelledFiles(paths, labels, list(class_names))
