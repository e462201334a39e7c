"""Your own data: imbalanced classes, photos of none of the classes, any aspect ratio, and
confidence that means what it says."""

from __future__ import annotations

import csv
import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenes.cli import main
from scenes.data.images import Preprocess, to_square
from scenes.data.samplers import BalancedSampler
from scenes.evaluation.loop import evaluate
from scenes.metrics import ECE_BINS
from scenes.models.acceptance import knn_distance, normalise, reference_rows, threshold_for
from scenes.models.probabilities import softmax
from scenes.serve.predictor import Predictor
from scenes.training import train
from scenes.training.calibrate import fit_temperature
from scenes.training.imbalance import class_weights, imbalance_notice

from conftest import (
    INTEL_TRAIN,
    make_folder,
    make_image,
    needs_intel,
    needs_weights,
    real_subset,
    tiny_train_config,
)

GRADIO_PHOTOS = Path(__import__("gradio").__file__).parent / "media_assets" / "images"
SKIMAGE_DATA = Path(next(iter(find_spec("skimage").submodule_search_locations))) / "data"
# Photos of cats, none of them a scene: scikit-image's Chelsea, Gradio's lion and cheetah.
CATS = [SKIMAGE_DATA / "chelsea.png", GRADIO_PHOTOS / "lion.jpg", GRADIO_PHOTOS / "cheetah.jpg"]


# -- imbalanced classes -------------------------------------------------------------------------
def test_class_weights_follow_the_counts():
    counts = np.array([10, 100, 1000])
    balanced = class_weights(counts, "balanced")
    assert balanced.mean() == pytest.approx(1.0)
    assert balanced[0] / balanced[1] == pytest.approx(10.0)  # inverse frequency
    effective = class_weights(counts, "effective", beta=0.999)
    assert effective.mean() == pytest.approx(1.0)
    # Cui et al.: between no weighting and inverse frequency, flatter for the large classes.
    assert 1.0 < effective[0] / effective[1] < 10.0
    assert effective[1] / effective[2] < balanced[1] / balanced[2]
    assert class_weights(counts, "none") is None


def test_the_balanced_sampler_draws_every_class_equally_and_reproducibly():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 3)
    sampler = BalancedSampler(labels, seed=3)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == len(labels)
    per_class = np.bincount(labels[drawn], minlength=3)
    assert per_class.max() - per_class.min() <= 1  # each class a third of the epoch
    assert set(np.flatnonzero(labels == 2)) <= set(drawn)  # the rare class, repeated
    assert list(BalancedSampler(labels, seed=3)) == drawn  # a pure function of (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != drawn
    shards = [list(BalancedSampler(labels, 3, rank, 2)) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(labels) // 2
    assert sorted(shards[0] + shards[1]) == sorted(drawn[: 2 * (len(labels) // 2)])


def test_an_imbalanced_run_says_so_and_records_its_options(tmp_path, capsys):
    data = tmp_path / "data"
    make_folder(data, ["big_a", "big_b"], 16)
    make_folder(data, ["small"], 4, seed=5)
    from scenes.config import load_config

    assert "imbalanced" in imbalance_notice(np.array([16, 16, 3]), ["a", "b", "c"], load_config())
    assert imbalance_notice(np.array([16, 15, 9]), ["a", "b", "c"], load_config()) is None
    # An --init run's old class the new data lacks is warned of elsewhere, not as "0 (16.0x)";
    # the classes it trains are still compared.
    names = ["a", "b", "c", "old"]
    assert imbalance_notice(np.array([16, 15, 9, 0]), names, load_config(), ["old"]) is None
    notice = imbalance_notice(np.array([16, 15, 3, 0]), names, load_config(), ["old"])
    assert "c 3 (5.3x)" in notice and "old" not in notice
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"]
    argv += ["--image-size", "32", "--batch-size", "8", "--no-pretrained", "--mode", "full"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "training classes are imbalanced" in out and "train.class_weights=balanced" in out
    argv[argv.index(str(tmp_path / "run"))] = str(tmp_path / "weighted")
    argv += ["--set", "train.class_weights=effective", "--set", "data.sampler=balanced"]
    assert main(argv) == 0
    assert "train.class_weights=balanced" not in capsys.readouterr().out  # addressed
    meta = json.loads((tmp_path / "weighted" / "model" / "model.json").read_text())
    assert meta["training"]["class_weights"] == "effective"
    assert meta["training"]["sampler"] == "balanced"


def test_evaluate_gives_balanced_accuracy(trained_run, tmp_path, capsys):
    folder = make_folder(tmp_path / "test", ["cat_a", "cat_b", "cat_c"], 3)
    make_folder(tmp_path / "test", ["cat_a"], 9, seed=7)  # cat_a: 9 more (overwrites 3)
    result = evaluate(trained_run, data=folder, out=False)
    recalls = [result.per_class[c]["recall"] for c in result.present_classes]
    assert result.balanced_accuracy == pytest.approx(np.mean(recalls))
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(trained_run),
                "--data",
                str(folder),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert "balanced accuracy" in capsys.readouterr().out


# -- any aspect ratio ---------------------------------------------------------------------------
def two_halves(path: Path, size=(600, 450)) -> Path:
    """Left half red, right half blue, a green stripe at the very left: what each mode keeps
    shows in the pixels."""
    image = Image.new("RGB", size, (220, 30, 30))
    image.paste((30, 30, 220), (size[0] // 2, 0, size[0], size[1]))
    image.paste((30, 220, 30), (0, 0, size[0] // 20, size[1]))
    image.save(path)
    return path


def test_each_resize_mode_makes_its_square(tmp_path):
    photo = Image.open(two_halves(tmp_path / "wide.png"))
    squash = np.asarray(to_square(photo, 60, resize="squash"))
    crop = np.asarray(to_square(photo, 60, resize="crop"))
    pad = np.asarray(to_square(photo, 60, resize="pad", fill=(1, 2, 3)))
    assert squash[30, 0, 1] > 150  # the green stripe is kept, squeezed
    assert crop[30, 0, 1] < 100  # cropped away: the centre square starts right of it
    assert crop[30, 5, 0] > 150 and crop[30, 55, 2] > 150  # red left, blue right of centre
    assert tuple(pad[0, 30]) == (1, 2, 3) and tuple(pad[-1, 30]) == (1, 2, 3)  # letterbox
    assert pad[30, 0, 1] > 150  # the whole width is kept
    fill = Preprocess.for_mean(60, "bilinear", "pad", [0.5, 0.25, 0.0]).fill
    assert fill == (128, 64, 0)  # the colour that normalises to zero


@pytest.fixture(scope="module")
def pad_run(tmp_path_factory) -> Path:
    """A tiny run trained with data.resize=pad on photos of several aspect ratios."""
    root = tmp_path_factory.mktemp("pad")
    data = root / "data"
    for c, (name, colour) in enumerate((("red", (220, 40, 40)), ("blue", (40, 40, 220)))):
        for i in range(10):
            make_image(data / name / f"{i}.jpg", colour, size=(60 + 10 * i, 40), seed=c * 100 + i)
    cfg = tiny_train_config(
        data, root / "run", **{"model.name": "resnet18", "data.resize": "pad", "train.epochs": 2}
    )
    return train(cfg).run_dir


def test_the_resize_mode_is_one_choice_for_every_path(pad_run, tmp_path):
    from gradio_client import Client, handle_file

    from scenes.serve.app import build_app

    meta = json.loads((pad_run / "model" / "model.json").read_text())
    assert meta["resize"] == "pad"
    photo = two_halves(tmp_path / "wide.jpg")
    torch_model = Predictor.load(pad_run, device="cpu")
    expected = dict(torch_model.predict(photo, top_k=2))
    pixels = torch_model.load_image(photo)
    assert tuple(pixels[0, 16]) != tuple(pixels[16, 16])  # letterboxed: the top row is fill
    onnx = Predictor.load(pad_run, backend="onnx")
    for label, p in onnx.predict(photo, top_k=2):
        assert p == pytest.approx(expected[label], abs=1e-5)
    demo = build_app(torch_model, explain=False)
    from test_app import launch

    try:
        labels, _answer = Client(launch(demo), verbose=False).predict(
            handle_file(str(photo)), api_name="/predict"
        )
    finally:
        demo.close()
    for c in labels["confidences"]:
        assert c["confidence"] == pytest.approx(expected[c["label"]], abs=1e-5)
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(pad_run), str(photo), "--out", str(out)]) == 0
    row = out.read_text().splitlines()[1].split(",")
    assert float(row[2]) == pytest.approx(expected[row[1]], abs=1e-5)


# -- confidence that means what it says ------------------------------------------------------------
def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.1)


def test_the_bundle_serves_calibrated_probabilities_on_every_backend(trained_run, tmp_path):
    meta = json.loads((trained_run / "model" / "model.json").read_text())
    temperature = meta["temperature"]
    assert temperature != 1.0  # fitted on the validation split after training
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    photo = make_image(tmp_path / "x.jpg", (200, 60, 40))
    model = Predictor.load(run, device="cpu")
    pixels = model.load_image(photo)[None]
    raw = model.logits(pixels)
    expected = softmax(raw / temperature)
    np.testing.assert_allclose(model.probabilities(pixels), expected, atol=1e-6)
    onnx = Predictor.load(run, backend="onnx")
    np.testing.assert_allclose(onnx.probabilities(pixels), expected, atol=1e-5)


def test_evaluate_reports_calibration_error_and_a_reliability_diagram(
    trained_run, tmp_path, capsys
):
    out = tmp_path / "e"
    assert main(["evaluate", "--run", str(trained_run), "--split", "val", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "expected calibration error" in printed and "temperature" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    # the ECE of the confidences served, recomputed from the written predictions: equal-width
    # bins of the top-class confidence, |accuracy - confidence| weighted by each bin's share
    rows = list(csv.DictReader((out / "predictions.csv").open(newline="")))
    confidence = np.array([float(r["confidence"]) for r in rows])
    correct = np.array([r["true"] == r["predicted"] for r in rows])
    bins = np.clip(np.floor(confidence * ECE_BINS).astype(int), 0, ECE_BINS - 1)
    gaps = [
        abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in range(ECE_BINS)
        if (bins == b).any()
    ]
    assert metrics["ece"] == pytest.approx(sum(gaps), abs=1e-5)
    assert metrics["ece_uncalibrated"] != metrics["ece"]  # the temperature changed the answers
    with Image.open(out / "reliability.png") as figure:
        assert figure.format == "PNG"


# -- none of these ---------------------------------------------------------------------------------
def test_knn_distance_is_the_kth_nearest_unit_distance():
    reference = normalise(np.eye(3, dtype=np.float32))
    query = np.array([[1.0, 0, 0], [1.0, 1.0, 0]], dtype=np.float32)
    assert knn_distance(query, reference, 1) == pytest.approx(
        [0.0, np.sqrt(2 - np.sqrt(2))], abs=1e-6
    )
    assert knn_distance(query, reference, 2)[0] == pytest.approx(np.sqrt(2.0), abs=1e-6)
    assert threshold_for(np.arange(101.0), 0.95) == pytest.approx(95.0)


def test_reference_rows_are_training_rows_for_either_task():
    """Up to the count, in range, seeded; per class in proportion for one label per image,
    uniformly for multi-label rows (a bug once drew indices of the flattened label matrix)."""
    single = np.repeat([0, 1, 2], [600, 300, 100])
    rows = reference_rows(single, 100, seed=0)
    assert len(rows) == 100 and np.array_equal(rows, reference_rows(single, 100, seed=0))
    assert np.bincount(single[rows]).tolist() == [60, 30, 10]
    multi = np.random.default_rng(0).integers(0, 2, size=(1000, 6))
    rows = reference_rows(multi, 100, seed=0)
    assert len(rows) == len(set(rows)) == 100 and rows.max() < len(multi)
    assert np.array_equal(reference_rows(multi, 5000, seed=0), np.arange(1000))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """The real pretrained MobileNetV2, fine-tuned briefly on real photos of the six classes."""
    if not INTEL_TRAIN.is_dir():
        pytest.skip(f"no {INTEL_TRAIN}")
    from conftest import MOBILENET_FILE

    if not MOBILENET_FILE.is_file():
        pytest.skip(f"no {MOBILENET_FILE}")
    root = tmp_path_factory.mktemp("real")
    data = real_subset(root / "intel", per_class=24)
    cfg = tiny_train_config(
        data,
        root / "run",
        **{
            "model.pretrained": True,
            "model.weights_file": str(MOBILENET_FILE),
            "data.image_size": 96,
            "data.val_fraction": 0.25,
            "train.mode": "head",
            "train.epochs": 3,
        },
    )
    return train(cfg).run_dir


@needs_intel
@needs_weights
def test_a_photo_of_a_cat_is_none_of_the_known_classes(real_run, tmp_path, capsys):
    meta = json.loads((real_run / "model" / "model.json").read_text())
    assert (
        meta["acceptance"]["accept_rate"] == 0.95
        and (real_run / "model" / "acceptance.safetensors").is_file()
    )
    model = Predictor.load(real_run, device="cpu")
    for cat in CATS:
        answer = model.predict(cat)
        assert answer.accepted is False, (cat.name, answer.score, meta["acceptance"])
    scene = sorted((INTEL_TRAIN / "forest").iterdir())[-1]  # not among the training photos
    assert model.predict(scene).accepted is True
    # --accept-all switches it off; predict writes the verdict as columns
    assert Predictor.load(real_run, device="cpu", accept_all=True).predict(CATS[0]).accepted is None
    out = tmp_path / "p.csv"
    assert (
        main(["predict", "--run", str(real_run), str(CATS[0]), str(scene), "--out", str(out)]) == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0].endswith("accepted,unknown_score,error")
    assert lines[1].split(",")[-3] == "False" and lines[2].split(",")[-3] == "True"
    # ONNX answers the same
    onnx = Predictor.load(real_run, backend="onnx")
    assert onnx.predict(CATS[0]).accepted is False
    assert onnx.predict(CATS[0]).score == pytest.approx(model.predict(CATS[0]).score, abs=1e-4)


@needs_intel
@needs_weights
def test_the_app_says_none_of_the_known_classes_for_a_cat(real_run):
    from gradio_client import Client, handle_file

    from scenes.serve.app import build_app

    from test_app import launch

    demo = build_app(Predictor.load(real_run, device="cpu"), explain=False)
    try:
        client = Client(launch(demo), verbose=False)
        labels, answer = client.predict(handle_file(str(CATS[0])), api_name="/predict")
        assert answer == "none of the known classes"
        assert len(labels["confidences"]) == 3  # the guess, shown below
        scene = sorted((INTEL_TRAIN / "sea").iterdir())[-1]
        labels, answer = client.predict(handle_file(str(scene)), api_name="/predict")
        assert answer == labels["label"]
    finally:
        demo.close()


@needs_intel
@needs_weights
def test_evaluate_reports_the_share_accepted(real_run, tmp_path):
    result = evaluate(real_run, split="val", out=tmp_path / "e")
    # The threshold accepted 95% of these very photos when it was set.
    assert result.accepted_share == pytest.approx(0.95, abs=0.06)
    assert evaluate(real_run, split="val", out=False, accept_all=True).accepted_share is None


@needs_intel
@needs_weights
def test_tta_accepts_the_share_the_threshold_was_fitted_for(real_run, tmp_path):
    """The threshold is fitted on single views (here at the median, where a drift shows most);
    --tta averages the photo's and its mirror's answers, and accepts the same share."""
    from scenes.evaluation.sources import split_files
    from scenes.models.bundle import read_meta, save_meta

    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    model = Predictor.load(run, device="cpu")
    paths, _ = split_files(run, "val", model.class_names, False)
    pixels = np.stack([model.load_image(p) for p in paths])
    meta = read_meta(run)
    meta.acceptance = meta.acceptance.model_copy(
        update={"threshold": threshold_for(model.answers(pixels).scores, 0.5), "accept_rate": 0.5}
    )
    save_meta(meta, run / "model")
    plain = evaluate(run, split="val", out=False)
    mirrored = evaluate(run, split="val", out=False, tta=True)
    assert plain.accepted_share == pytest.approx(0.5, abs=0.03)
    assert mirrored.accepted_share == pytest.approx(plain.accepted_share, abs=0.01)
    assert mirrored.tta and not np.allclose(mirrored.probs, plain.probs)  # TTA still averages
