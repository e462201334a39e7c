"""Every export format behind one Predictor: exported, stamped with the weights it came from,
re-exported when stale, loaded, and answering like PyTorch (fp32 within 1e-4; int8 keeping the
top class on real validation photos, flipping only near ties); `scenes benchmark` measures them
all; a missing runtime is named with the command that installs it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from scenes.cli import main
from scenes.data.files import file_sha256
from scenes.models.bundle import WEIGHTS_FILE
from scenes.serve.formats import (
    DIGEST_KEY,
    FORMATS,
    VERSION_KEY,
    StaleExportError,
    export,
    is_current,
    recorded,
)
from scenes.serve.predictor import Predictor
from scenes.serve.served_exports import current_export
from scenes.training import train

from conftest import CLASSES, INTEL_TRAIN, MOBILENET_FILE, needs_intel, needs_weights, real_subset

FP32 = ["onnx", "torchscript", "openvino"]
INT8 = ["onnx-int8", "openvino-int8"]
# int8 vs PyTorch on VALIDATION_SAMPLE with the model below (the default recipe on 150 photos
# per class, 3 epochs), measured on an x86 CPU without VNNI (AVX2 only): the top class kept on
# 96.7% (ONNX Runtime) and 98.0% (OpenVINO) of the photos (97.0% and 97.8% of 4,800); every
# flip a near tie in fp32 (top-2 margin at most 0.35, median 0.13); the largest probability
# difference 0.45 and 0.23, the 99th percentile of each photo's largest difference 0.26 and
# 0.15. (With 8-bit weights, which that CPU's products saturate, ONNX Runtime's kept 93.5%.)
# The default recipe's own model keeps the top class on 99% of its validation photos
# (`scenes benchmark`, docs/results.md): a small model has thinner margins, so the bounds here
# are set for it. The saturation itself is checked on every CPU by the weights' width.
# On an AMD EPYC with VNNI (this stop's machine) the same test measured: ONNX Runtime 95.7%
# kept, one flip at a top-2 margin of 0.577 (the next 0.31), largest difference 0.38, 99th
# percentile 0.23; OpenVINO 97.3%, flips at most 0.29, 0.21 and 0.14.
# On an Intel Xeon with VNNI and AMX (the model trains to 88.3% there): ONNX Runtime 96.8%
# kept, one flip at a top-2 margin of 0.709 (a sea photo at 0.84 in fp32, 0.37 in int8, glacier
# 0.57), largest difference 0.48, 99th percentile 0.24; OpenVINO 98.5%, 0.19 and 0.12. Both
# int8 files 87.8% top-1, 0.5 points below fp32. Which photos flip, and at what margin, depends
# on the CPU (a bound on the flips' margin failed on two of the three), so the test bounds what a
# user sees instead: how far any probability moves, and the top-1 lost on these labelled photos.
INT8_SAME_TOP1 = 0.95
INT8_MAX_DIFF, INT8_P99_DIFF = 0.6, 0.35
INT8_TOP1_LOSS = 0.015  # 9 of the 600 photos; measured 0.005 (3)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """The default recipe (real ImageNet MobileNetV2, 150 px) on 150 real photos per class,
    3 epochs: a model with a production model's kind of margins, in about 3 minutes."""
    if not (INTEL_TRAIN.is_dir() and MOBILENET_FILE.is_file()):
        pytest.skip("needs the shared photos and weights")
    from scenes.config import load_config

    root = tmp_path_factory.mktemp("formats")
    data = real_subset(root / "intel", per_class=150)
    cfg = load_config(
        overrides={
            "data.dir": str(data),
            "out": str(root / "run"),
            "model.weights_file": str(MOBILENET_FILE),
            "train.epochs": 3,
            "train.progress_bar": False,
            "data.val_fraction": 0.2,
        }
    )
    return train(cfg).run_dir


@pytest.fixture(scope="module")
def validation_sample() -> list[Path]:
    """100 real photos per class that the run never saw (they follow its 150 per class)."""
    return [p for c in CLASSES for p in sorted((INTEL_TRAIN / c).iterdir())[200:300]]


@pytest.fixture(scope="module")
def pytorch_answers(real_run, validation_sample):
    """The sample's pixels and PyTorch's answers on them, computed once for every format
    (decoding 600 photos and a forward pass per format was most of each case's time)."""
    torch_model = Predictor.load(real_run, device="cpu")
    pixels = np.stack([torch_model.load_image(p) for p in validation_sample])
    return pixels, torch_model.answers(pixels)


@needs_intel
@needs_weights
@pytest.mark.parametrize("fmt", FP32 + INT8)
def test_every_format_exports_stamped_and_answers_like_pytorch(
    real_run, pytorch_answers, validation_sample, fmt
):
    path = export(real_run, fmt)
    assert path == real_run / "model" / FORMATS[fmt].file and is_current(path, real_run, fmt)
    assert recorded(path, fmt)[DIGEST_KEY] == file_sha256(real_run / "model" / WEIGHTS_FILE)
    model = Predictor.load(real_run, backend=fmt, device="cpu")
    pixels, expected = pytorch_answers
    found = model.answers(pixels)
    if fmt in FP32:
        np.testing.assert_allclose(found.probs, expected.probs, atol=1e-4)
        np.testing.assert_allclose(found.scores, expected.scores, atol=1e-4)
        return
    flipped = found.probs.argmax(1) != expected.probs.argmax(1)
    assert 1 - flipped.mean() >= INT8_SAME_TOP1, flipped.mean()
    truth = np.array([model.class_names.index(p.parent.name) for p in validation_sample])
    top1 = {
        name: (a.probs.argmax(1) == truth).mean() for name, a in [("fp32", expected), (fmt, found)]
    }
    assert top1["fp32"] - top1[fmt] <= INT8_TOP1_LOSS, top1
    diff = np.abs(found.probs - expected.probs).max(axis=1)
    assert diff.max() < INT8_MAX_DIFF and np.quantile(diff, 0.99) < INT8_P99_DIFF
    assert path.stat().st_size < 0.4 * (real_run / "model" / WEIGHTS_FILE).stat().st_size


def widest_int8_weights(path: Path, fmt: str) -> dict[str, int]:
    """The largest |int8 weight| of depthwise convolutions and of every other layer in an int8
    export. x86 CPUs without VNNI add pairs of uint8 x int8 products in 16 bits, which 8-bit
    weights overflow (255 x 127 x 2 > 32767); depthwise kernels add in 32 bits."""
    widest = {"depthwise": 0, "other": 0}
    if fmt == "onnx-int8":
        import onnx
        from onnx.numpy_helper import to_array

        graph = onnx.load(str(path)).graph
        weights = {
            t.name: to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
        }
        dequantized = {
            n.output[0]: weights[n.input[0]]
            for n in graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in weights
        }
        for node in graph.node:
            if node.op_type in ("Conv", "Gemm", "MatMul") and node.input[1] in dequantized:
                w = dequantized[node.input[1]]
                group = next((a.i for a in node.attribute if a.name == "group"), 1)
                kind = "depthwise" if group > 1 and w.shape[1] == 1 else "other"
                widest[kind] = max(widest[kind], int(np.abs(w.astype(int)).max()))
        return widest
    import openvino as ov

    for op in ov.Core().read_model(str(path)).get_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.i8:
            continue
        user = op
        while user.get_type_name() not in ("Convolution", "GroupConvolution", "MatMul"):
            user = next(iter(user.output(0).get_target_inputs())).get_node()  # Convert, Multiply...
        kind = "depthwise" if user.get_type_name() == "GroupConvolution" else "other"
        widest[kind] = max(widest[kind], int(np.abs(op.get_data().astype(int)).max()))
    return widest


@needs_intel
@needs_weights
def test_a_stale_file_is_exported_again_and_a_named_one_refused(real_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    for fmt in ("onnx", "torchscript", "openvino"):
        export(run, fmt)
    weights = run / "model" / WEIGHTS_FILE
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    state = {k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(weights))  # the bundle changed under its exports (as a resume does)
    for fmt in ("onnx", "torchscript", "openvino"):
        stale = run / "model" / FORMATS[fmt].file
        assert not is_current(stale, run, fmt)
        with pytest.raises(StaleExportError, match=f"--format {fmt}"):
            Predictor.load(run, backend=fmt, device="cpu", export_path=stale)
        current_export(run / "model", fmt)  # exported again
        assert is_current(stale, run, fmt)


@needs_intel
@needs_weights
def test_a_torchscript_file_from_elsewhere_is_never_loaded(real_run, tmp_path, monkeypatch):
    """A TorchScript file is a program: one that scenes did not write here is exported again
    from the weights (default path) or refused (a path the caller names)."""
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    path = export(run, "torchscript")
    Predictor.load(run, backend="torchscript", device="cpu", export_path=path)  # ours: loads
    monkeypatch.setenv("SCENES_CACHE", str(tmp_path / "another-machine"))
    with pytest.raises(Exception, match="not written by scenes on this machine"):
        Predictor.load(run, backend="torchscript", device="cpu", export_path=path)
    before = path.stat().st_mtime_ns
    Predictor.load(run, backend="torchscript", device="cpu")
    assert path.stat().st_mtime_ns != before  # rewritten, then loaded


def test_a_file_from_an_older_exporter_is_exported_again(trained_run, tmp_path):
    """A file an older scenes wrote (e.g. int8 with 8-bit weights, which overflow on CPUs
    without VNNI) is not current, though made from the same weights."""
    import onnx

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    path = export(run, "onnx")
    assert is_current(path, run, "onnx")
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {**recorded(path, "onnx"), VERSION_KEY: "2"})
    onnx.save(graph, str(path))
    assert not is_current(path, run, "onnx")
    assert current_export(run / "model", "onnx") == path and is_current(path, run, "onnx")


def test_an_openvino_export_is_published_as_one_folder(trained_run, tmp_path):
    """The .xml and its .bin arrive together: the format's folder is built beside the old one
    and takes its place in one rename (nothing of the old folder is left in it)."""
    pytest.importorskip("openvino")
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    path = export(run, "openvino")
    folder = path.parent
    (folder / "from-the-old-export.txt").write_text("old")
    old_folder = folder.stat().st_ino
    assert export(run, "openvino") == path
    assert folder.stat().st_ino != old_folder  # a new folder, not new files in the old one
    assert sorted(f.name for f in folder.iterdir()) == ["model.bin", "model.xml"]
    assert is_current(path, run, "openvino") and not list(folder.parent.glob(".openvino*"))


def test_int8_needs_the_runs_training_images(trained_run, tmp_path, capsys):
    alone = tmp_path / "bundle"
    shutil.copytree(trained_run / "model", alone)  # a bundle without its run folder
    assert main(["export", "--run", str(alone), "--format", "onnx-int8"]) == 2
    assert "split.csv" in capsys.readouterr().err


def test_a_missing_runtime_is_named_with_its_install_command(fresh_run, monkeypatch, capsys):
    import scenes.serve.formats as formats

    real = formats.find_spec
    monkeypatch.setattr(formats, "find_spec", lambda m: None if m == "openvino" else real(m))
    assert main(["export", "--run", str(fresh_run), "--format", "openvino"]) == 2
    assert "pip install 'scenes[openvino]'" in capsys.readouterr().err


def test_cli_export_int8_calibrates_on_training_images(fresh_run, capsys):
    assert (
        main(["export", "--run", str(fresh_run), "--format", "onnx-int8", "--calibration", "8"])
        == 0
    )
    out = capsys.readouterr().out
    assert "model.int8.onnx" in out and "calibrated on 8 training images" in out
    stamp = recorded(fresh_run / "model" / "model.int8.onnx", "onnx-int8")
    assert stamp["scenes.calibration"] == "8 training images, seed 0"


def test_benchmark_measures_every_format_and_lists_the_skipped(fresh_run, monkeypatch, capsys):
    import scenes.serve.formats as formats

    real = formats.find_spec
    monkeypatch.setattr(formats, "find_spec", lambda m: None if m == "nncf" else real(m))
    argv = ["benchmark", "--run", str(fresh_run), "--split", "val", "--calls", "3"]
    assert main([*argv, "--images", "6"]) == 0
    out = capsys.readouterr().out
    assert "| openvino-int8 | skipped: nncf not installed" in out
    with (fresh_run / "benchmark" / "benchmark.csv").open() as fh:
        rows = {r["format"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["torch", *FORMATS]
    for fmt in ("torch", "onnx", "torchscript", "openvino"):
        r = rows[fmt]
        assert float(r["same_top1"]) == 1.0 and float(r["max_prob_diff"]) < 1e-4
        assert float(r["p50_ms"]) > 0 and float(r["p50_ratio_min"]) <= float(r["p50_ratio"])
        assert float(r["size_mb"]) > 0 and float(r["images_per_s"]) > 0
    assert float(rows["torch"]["p50_ratio"]) == 1.0
    assert (fresh_run / "benchmark" / "benchmark.png").is_file()
    assert main([*argv, "--rounds", "4"]) == 2  # fewer than 5 alternated rounds: no ratio


@needs_intel
@needs_weights
def test_the_hub_folder_carries_weights_configs_and_a_card_from_the_run(
    real_run, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    assert main(["evaluate", "--run", str(run), "--split", "val"]) == 0
    folder = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["export", "--run", str(run), "--format", "hf", "--out", str(folder)]
    assert main([*argv, "--push", "someone/scenes-test"]) == 1  # offline: kept, not lost
    out = capsys.readouterr().out
    assert f"The folder {folder} is complete" in out and "hf upload someone/scenes-test" in out
    assert {p.name for p in folder.iterdir()} >= {
        "model.safetensors",
        "model.json",
        "acceptance.safetensors",
        "config.json",
        "README.md",
        "figures",
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {str(i): c for i, c in enumerate(CLASSES)}
    assert config["image_size"] == 150 and config["architecture"] == "torchvision:mobilenet_v2"
    card = (folder / "README.md").read_text()
    for part in ("## Intended use", "## Training data and recipe", "## Metrics"):
        assert part in card
    rows = list(csv.DictReader((run / "split.csv").open()))
    count = {
        s: sum(r["label"] == "glacier" and r["split"] == s for r in rows) for s in ("train", "val")
    }
    assert f"| glacier | {count['train']} | {count['val']} |" in card  # images per class
    assert "![confusion matrix, val](figures/val-confusion_matrix.png)" in card
    assert (folder / "figures" / "val-confusion_matrix.png").is_file()
    assert "No label-issue scan was run" in card
    assert "torchvision.models.mobilenet_v2(num_classes=6)" in card
    # the metrics in the Hub's own terms: the front matter's model-index, spelled out in prose
    front = yaml.safe_load(card.split("---")[1])
    results = {r["dataset"]["split"]: r for r in front["model-index"][0]["results"]}
    evaluated = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    scores = {m["type"]: m for m in results["val"]["metrics"]}
    assert scores["accuracy"]["value"] == round(evaluated["accuracy"], 4)
    assert scores["f1"] == {
        "type": "f1",
        "value": round(evaluated["macro_f1"], 4),
        "name": "macro F1",
        "args": {"average": "macro"},
    }
    assert results["val"]["task"]["type"] == "image-classification"
    best = {m["type"]: m["value"] for m in results["validation"]["metrics"]}
    assert set(best) == {"accuracy", "f1"} and 0 < best["accuracy"]
    assert f"top-1 accuracy {best['accuracy']:.4f}, macro F1 {best['f1']:.4f}" in card
    assert " acc 0." not in card
    # the card's torchvision recipe works as written
    import torchvision
    from safetensors.torch import load_file

    net = torchvision.models.mobilenet_v2(num_classes=6)
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    photo = sorted((INTEL_TRAIN / "sea").iterdir())[400]
    model = Predictor.load(folder, device="cpu")
    x = model.to_input(model.load_image(photo)[None]).contiguous()
    import torch

    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), model.module(x), atol=1e-5, rtol=1e-5)
    # nothing is lost: a folder holding other files is refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    other = ["export", "--run", str(run), "--format", "hf", "--out", str(tmp_path / "other")]
    assert main(other) == 2
    assert "holds other files" in capsys.readouterr().err
