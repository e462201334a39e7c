"""scenes.data.files: one walker, one hidden-file rule and one content digest for every command;
and one layout finder (discover.find_layout) for training and ``data check``."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from scenes.data.cache import decode_images
from scenes.data.check import check_folder, folder_stats, iter_files
from scenes.data.discover import find_layout, list_labelled_files
from scenes.data.files import content_digest, list_files
from scenes.data.resize import resize_tree
from scenes.serve.predict import collect_images

from conftest import make_folder, make_image


def plant_hidden(folder: Path) -> set[Path]:
    """What a camera, a file browser or a macOS zip leaves beside the photos: files that are
    no data. The AppleDouble ones hold no image, so any command that read them would show it."""
    hidden = {
        make_image(folder / ".thumbnails" / "x.jpg", (1, 2, 3)),
        make_image(folder / "a" / ".thumbnails" / "deep" / "y.png", (1, 2, 3)),
        make_image(folder / "a" / ".hidden.jpg", (1, 2, 3)),
        make_image(folder / "__MACOSX" / "a" / "000.jpg", (1, 2, 3)),
    }
    for junk in (folder / "__MACOSX" / "a" / "._000.jpg", folder / "a" / "._001.jpg"):
        junk.parent.mkdir(parents=True, exist_ok=True)
        junk.write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork, not a JPEG")
        hidden.add(junk)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return hidden | {folder / ".DS_Store"}


@pytest.fixture
def tree_with_hidden_files(tmp_path) -> tuple[Path, list[Path], set[Path]]:
    root = make_folder(tmp_path / "photos", ["a", "b"], 3)
    make_image(root / "b" / "nested" / "deeper.png", (9, 9, 9))
    visible = sorted(p for p in root.rglob("*") if p.is_file())
    return root, visible, plant_hidden(root)


def test_hidden_files_and_folders_are_ignored_by_every_command(tree_with_hidden_files, tmp_path):
    root, visible, hidden = tree_with_hidden_files
    assert all(p.is_file() for p in hidden) and len(visible) == 7

    # training discovery: __MACOSX is no class, .thumbnails/ inside a class holds no example
    files = list_labelled_files(root)
    assert files.class_names == ["a", "b"] and files.paths == visible

    # predict: a folder is searched like training data ...
    assert collect_images([root]) == visible
    # ... while a file named on the command line is taken as it is (it gets an error row)
    assert collect_images([root / "a" / "._001.jpg"]) == [root / "a" / "._001.jpg"]

    # resize: hidden images are neither written nor reported as unreadable
    summary = resize_tree(root, tmp_path / "resized", size=16, workers=1, progress=False)
    assert summary.written == len(visible) and not summary.failed
    written = sorted(p.relative_to(tmp_path / "resized") for p in list_files(tmp_path / "resized"))
    assert written == [p.relative_to(root) for p in visible]
    assert not any(p.name.startswith(".") for p in (tmp_path / "resized").rglob("*"))

    # check: sees the same files, so the AppleDouble junk is not reported as a non-image
    report = check_folder(root, progress=False)
    assert report.num_files == len(visible)
    assert report.clean, (report.non_images, report.corrupt)
    assert dict(folder_stats(root)[root.name]) == {"a": 3, "b": 4}


def test_the_walker_lists_sorted_and_keeps_non_images_only_when_asked(tmp_path):
    make_image(tmp_path / "b.jpg", (1, 2, 3))
    make_image(tmp_path / "a" / "z.PNG", (1, 2, 3))
    make_image(tmp_path / "a-c.jpeg", (1, 2, 3))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "empty").mkdir()
    assert list_files(tmp_path) == [
        tmp_path / "a" / "z.PNG",
        tmp_path / "a-c.jpeg",
        tmp_path / "b.jpg",
    ]
    assert list_files(tmp_path, images_only=False) == sorted(
        [*list_files(tmp_path), tmp_path / "notes.txt"]
    )
    # the folder asked for may itself be hidden: only names below it count
    inside = make_image(tmp_path / ".cache" / "data" / "x.jpg", (1, 2, 3))
    assert list_files(tmp_path / ".cache" / "data") == [inside]


def test_symlinked_files_count_and_symlinked_folders_are_not_entered(tmp_path):
    real = make_folder(tmp_path / "real", ["a"], 2)
    linked = tmp_path / "linked"
    (linked / "a").mkdir(parents=True)
    (linked / "a" / "000.jpg").symlink_to(real / "a" / "000.jpg")
    (linked / "loop").symlink_to(linked, target_is_directory=True)
    (linked / "a" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    assert list_files(linked) == [linked / "a" / "000.jpg"]


def test_one_content_digest_for_the_cache_and_the_check(tmp_path):
    root = make_folder(tmp_path / "d", ["a"], 2)
    paths = list_files(root)
    expected = [hashlib.sha1(p.read_bytes()).hexdigest() for p in paths]
    assert [content_digest(p.read_bytes()) for p in paths] == expected
    assert decode_images(paths, 16, None, workers=1, progress=False).digests == expected
    shutil.copy(paths[0], root / "a" / "copy.jpg")
    (group,) = check_folder(root, progress=False).duplicates
    assert group.digest == expected[0]


# -- one layout finder ----------------------------------------------------------------------
def test_check_splits_are_the_layouts_splits(tmp_path):
    make_folder(tmp_path / "t" / "train", ["a"], 1)
    for split in ("pred", "test", "extra", "val"):
        make_folder(tmp_path / "t" / split, ["a"], 1)
    (tmp_path / "t" / ".cache").mkdir()
    (tmp_path / "t" / "__MACOSX").mkdir()
    layout = find_layout(tmp_path / "t")
    assert list(layout.splits) == ["train", "val", "test", "pred", "extra"]
    assert layout.test_dir == layout.splits["test"] == tmp_path / "t" / "test"
    assert [f.split for f in iter_files(tmp_path / "t")] == list(layout.splits)


def test_kaggle_splits_nested_or_not(tmp_path):
    root = tmp_path / "k"
    make_folder(root / "seg_train" / "seg_train", ["a"], 2)
    make_folder(root / "seg_test", ["a"], 1)  # not nested twice: still the test split
    make_image(root / "seg_pred" / "seg_pred" / "1.jpg", (1, 2, 3))
    layout = find_layout(root)
    assert layout.name == "kaggle" and layout.splits == {
        "train": root / "seg_train" / "seg_train",
        "test": root / "seg_test",
        "pred": root / "seg_pred" / "seg_pred",
    }
    assert layout.train_dir == layout.splits["train"] and layout.test_dir == root / "seg_test"
    assert {s: dict(c) for s, c in folder_stats(root).items()} == {
        "train": {"a": 2},
        "test": {"a": 1},
        "pred": {None: 1},
    }


def test_bare_layout_is_one_split_and_ignores_macos_metadata(tmp_path):
    root = make_folder(tmp_path / "bare", ["x", "y"], 1)
    make_image(root / "__MACOSX" / "x" / "000.jpg", (1, 2, 3))
    layout = find_layout(root)
    assert layout.name == "bare" and layout.splits == {"bare": root}
    assert list_labelled_files(layout.train_dir).class_names == ["x", "y"]
