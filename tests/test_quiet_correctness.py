"""Quiet correctness: a replaced file is decoded again, caches can be listed and cleared,
macro F1 says which classes it covers, outputs never overwrite each other, and the EMA
average lives on the training device."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from scenes.cli import main
from scenes.data.cache import decode_images
from scenes.evaluation.loop import evaluate

from conftest import make_folder, make_image


def test_a_file_replaced_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    red = make_image(tmp_path / "src" / "x.png", (220, 40, 40))
    blue = tmp_path / "blue.png"
    Image.new("RGB", (40, 40), (40, 40, 220)).save(blue)
    Image.new("RGB", (40, 40), (220, 40, 40)).save(red)
    assert red.stat().st_size == blue.stat().st_size  # same size, other pixels
    cache = tmp_path / "cache"
    before = np.array(decode_images([red], 32, cache, workers=1, progress=False).pixels)
    stamp = red.stat()
    shutil.copyfile(blue, red)  # `cp -p`: new content, the old size and times put back
    os.utime(red, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert red.stat().st_size == stamp.st_size and red.stat().st_mtime_ns == stamp.st_mtime_ns
    after = np.array(decode_images([red], 32, cache, workers=1, progress=False).pixels)
    assert before[0, 0, 0, 2] < 100 < after[0, 0, 0, 2]  # blue now


def test_data_cache_lists_and_clears_what_scenes_wrote_only(tmp_path, capsys):
    cache = tmp_path / "cache"
    files = list(make_folder(tmp_path / "d", ["a", "b"], 3).rglob("*.jpg"))
    decode_images(files, 32, cache, workers=1, progress=False)
    decode_images(files, 48, cache, workers=1, progress=False)
    (cache / "mine.txt").write_text("not scenes'")
    assert main(["data", "cache", "--dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert out.count("decoded images") == 2 and "6 images at 32 px" in out
    assert main(["data", "cache", "--dir", str(cache), "--clear", "--older-than", "1"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out  # both used today
    assert main(["data", "cache", "--dir", str(cache), "--clear"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out  # 2 decoded + their lock files
    assert sorted(p.name for p in cache.iterdir()) == ["mine.txt"]


def test_macro_f1_says_which_classes_it_averages(trained_run, tmp_path, capsys):
    folder = make_folder(tmp_path / "test", ["cat_a", "cat_b"], 3)
    make_image(folder / "cat_a" / "blue.jpg", (40, 40, 220), seed=99)  # looks like cat_c
    result = evaluate(trained_run, data=folder, out=tmp_path / "eval")
    assert result.present_classes == ["cat_a", "cat_b"]
    assert "cat_c" in result.f1_classes  # predicted, though absent from the labels
    present = [result.per_class[c]["f1"] for c in result.present_classes]
    assert result.macro_f1_present == pytest.approx(sum(present) / 2)
    assert result.macro_f1 == pytest.approx(
        sum(result.per_class[c]["f1"] for c in result.f1_classes) / len(result.f1_classes)
    )
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(trained_run),
                "--data",
                str(folder),
                "--out",
                str(tmp_path / "e2"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "classes present in the labels" in out and "no images of: cat_c" in out


def test_two_test_folders_of_the_same_name_get_two_result_folders(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    first = make_folder(tmp_path / "one" / "test", ["cat_a", "cat_b", "cat_c"], 2)
    second = make_folder(tmp_path / "two" / "test", ["cat_a", "cat_b", "cat_c"], 2, seed=3)
    a = evaluate(run, data=first).out_dir
    b = evaluate(run, data=second).out_dir
    again = evaluate(run, data=first).out_dir
    tta = evaluate(run, data=first, tta=True).out_dir
    assert a != b and again == a and tta not in (a, b)
    assert (a.name, b.name, tta.name) == ("test", "test-2", "test-tta")


def test_explain_leaves_no_figures_of_an_earlier_call(trained_run, tmp_path):
    out = tmp_path / "explain"
    out.mkdir()
    (out / "notes.png").write_bytes(b"the user's own file")
    photos = [make_image(tmp_path / f"p{i}.jpg", (40 * i, 200, 40), seed=i) for i in range(3)]
    assert main(["explain", "--run", str(trained_run), *map(str, photos), "--out", str(out)]) == 0
    assert {p.name for p in out.glob("p*.png")} == {"p0.png", "p1.png", "p2.png"}
    assert (out / "grid.png").is_file()
    assert main(["explain", "--run", str(trained_run), str(photos[1]), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "notes.png", "p1.png"]


def test_resize_never_writes_two_sources_to_one_file(tmp_path):
    from scenes.data.resize import resize_tree

    src = tmp_path / "src"
    make_image(src / "x.png", (200, 40, 40))
    Image.new("RGB", (30, 30), (40, 40, 200)).save(src / "x.gif")
    summary = resize_tree(src, tmp_path / "dst", size=16, workers=1, progress=False)
    assert summary.written == 2
    with (
        Image.open(tmp_path / "dst" / "x.png") as red,
        Image.open(tmp_path / "dst" / "x.gif.png") as blue,
    ):
        assert red.getpixel((8, 8))[0] > 150 and blue.getpixel((8, 8))[2] > 150


def test_the_weight_average_lives_on_the_training_device():
    import lightning as L

    from scenes.training.callbacks import WeightEMA

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

    module = Tiny()  # on the CPU, as a LightningModule is at setup time
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")))
    ema = WeightEMA(decay=0.9)
    ema.setup(trainer, module, "fit")
    averaged = next(ema._average_model.parameters())
    assert averaged.device == trainer.strategy.root_device


def test_dependency_floors_are_versions_the_code_needs():
    """EMAWeightAveraging came with Lightning 2.6; gradio refuses outside paths from 5.31 (and
    the app's tests pass on 5.31.0); the trust floors of docs/development.md#version-floors."""
    import tomllib

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    floors = {
        d.split(">=")[0].strip(): d.split(">=")[1].split(",")[0].strip()
        for d in deps["project"]["dependencies"]
        if ">=" in d
    }
    from packaging.version import Version

    assert Version(floors["lightning"]) >= Version("2.6")
    assert Version(floors["gradio"]) >= Version("5.31")
    assert Version(floors["torch"]) >= Version("2.10")  # weights_only=True unpickler fixes
    assert Version(floors["timm"]) >= Version("1.0.26")  # its loaders default to weights_only
    assert Version(floors["onnx"]) >= Version("1.21")  # external-data fixes
    assert Version(floors["pillow"]) >= Version("10.3")  # decoder overflows
