"""Find the train (and test) image folders of a dataset and the class names.

Accepted layouts, tried in this order:
  DIR/train/<class>/*            (+ DIR/test/<class>/*, and any other split beside them)
  DIR/seg_train/seg_train/<class>/*  (+ DIR/seg_test/seg_test/<class>/*)  -- Kaggle's Intel zip;
                                 a split not nested twice (DIR/seg_test/<class>) is taken too
  DIR/<class>/*                  (bare: everything is training data)

Every visible folder beside the train folder is a split (test, val, pred, ...), named without
Kaggle's ``seg_`` prefix: ``Layout.splits`` is the one place that knows this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .files import IMAGE_EXTENSIONS, is_hidden, list_files

KAGGLE_PREFIX = "seg_"
SPLIT_ORDER = ("train", "val", "test", "pred")  # listed first, in this order; others by name


@dataclass(frozen=True)
class Layout:
    root: Path
    train_dir: Path
    test_dir: Path | None
    name: str  # which layout matched: "train", "kaggle" or "bare"
    # split name -> folder, train first; a bare layout is one split named after its folder
    splits: dict[str, Path] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class LabelledFiles:
    paths: list[Path]
    labels: list[int]
    class_names: list[str]


def visible_subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))


def _kaggle_split(folder: Path) -> tuple[str, Path]:
    """``seg_test`` -> ("test", seg_test/seg_test), or seg_test itself when not nested."""
    inner = folder / folder.name
    return folder.name.removeprefix(KAGGLE_PREFIX), inner if inner.is_dir() else folder


def _ordered(splits: dict[str, Path]) -> dict[str, Path]:
    def rank(name: str) -> tuple[int, str]:
        return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)

    return {name: splits[name] for name in sorted(splits, key=rank)}


def find_layout(root: str | Path) -> Layout:
    root = Path(root)
    if root.is_file():
        raise DataError(
            f"{root} is a file; a folder is expected here: the one holding the class folders "
            f"(e.g. {root.parent})"
        )
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if (root / "train").is_dir():
        name, splits = "train", {d.name: d for d in visible_subdirs(root)}
    elif (root / f"{KAGGLE_PREFIX}train").is_dir():
        name, splits = "kaggle", dict(_kaggle_split(d) for d in visible_subdirs(root))
    else:
        return Layout(root, root, None, "bare", {root.name or str(root): root})
    return Layout(root, splits["train"], splits.get("test"), name, _ordered(splits))


def list_labelled_files(folder: str | Path, class_names: list[str] | None = None) -> LabelledFiles:
    """Images under ``folder/<class>/`` (recursively), labelled by sorted class name.

    With ``class_names`` given (e.g. a trained model's), labels follow that order instead, and a
    folder whose class is not among them is an error.
    """
    folder = Path(folder)
    dirs = visible_subdirs(folder)
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
        files = list_files(d)
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
