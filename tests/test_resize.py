from PIL import Image

from scenes.cli import main
from scenes.data.resize import resize_tree

from conftest import make_image


def _tree(root):
    make_image(root / "a" / "one.jpg", (10, 20, 30), size=(300, 200))
    make_image(root / "a" / "deep" / "two.png", (10, 20, 30), size=(50, 80), mode="RGBA")
    make_image(root / "b" / "three.tif", (10, 20, 30), size=(120, 120))
    (root / "b" / "bad.jpg").write_text("not an image")
    (root / "b" / "notes.txt").write_text("ignored: not an image file name")
    return root


def test_resize_keeps_the_tree_and_sizes(tmp_path):
    src = _tree(tmp_path / "src")
    summary = resize_tree(src, tmp_path / "dst", size=64, workers=2, progress=False)
    assert summary.written == 3 and list(summary.failed) == [str(src / "b" / "bad.jpg")]
    for rel in ("a/one.jpg", "a/deep/two.png", "b/three.tif"):  # each in its own format
        with Image.open(tmp_path / "dst" / rel) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
    assert not (tmp_path / "dst" / "b" / "notes.txt").exists()


def test_resize_is_idempotent_and_redoes_changed_sources(tmp_path):
    src = _tree(tmp_path / "src")
    resize_tree(src, tmp_path / "dst", size=32, workers=1, progress=False)
    again = resize_tree(src, tmp_path / "dst", size=32, workers=1, progress=False)
    assert again.written == 0 and again.skipped == 3 and len(again.failed) == 1
    make_image(src / "a" / "one.jpg", (200, 20, 30), size=(90, 90))  # newer source
    third = resize_tree(src, tmp_path / "dst", size=32, workers=1, progress=False)
    assert third.written == 1 and third.skipped == 2
    # another --size is not "already done"
    other = resize_tree(src, tmp_path / "dst", size=40, workers=1, progress=False)
    assert other.written == 3 and other.skipped == 0
    with Image.open(tmp_path / "dst" / "a" / "one.jpg") as im:
        assert im.size == (40, 40)


def test_cli_resize_reports_bad_files_with_exit_1(tmp_path, capsys):
    src = _tree(tmp_path / "src")
    assert main(["resize", str(src), str(tmp_path / "out"), "--size", "48"]) == 1
    out = capsys.readouterr().out
    assert "resized 3" in out and "bad.jpg" in out
    assert main(["resize", str(src), str(src / "inside")]) == 2
