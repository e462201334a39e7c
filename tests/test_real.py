"""Real photos, real ImageNet weights: proves weights, normalisation and labels line up."""

import csv

import pytest
import torch

from scenes.config import load_config
from scenes.serve.predictor import Predictor
from scenes.training import train

from conftest import CLASSES, REPO, SHARED, needs_intel, needs_weights, real_subset


@needs_intel
@needs_weights
def test_head_only_on_40_real_images_per_class_is_far_above_chance(tmp_path, offline_weights):
    data = real_subset(tmp_path / "intel", per_class=40)
    cfg = load_config(
        overrides={
            "data.dir": str(data),
            "data.val_fraction": 0.25,
            "data.batch_size": 16,
            "model.name": "mobilenet_v2",
            "model.weights": "IMAGENET1K_V1",
            "augment.preset": "none",
            "train.mode": "head",
            "train.epochs": 6,
            "train.lr": 0.003,
            "train.warmup_epochs": 0,
            "train.label_smoothing": 0.0,  # as written for the former defaults
            "train.patience": 5,
            "train.progress_bar": False,
            "out": str(tmp_path / "run"),
        }
    )
    result = train(cfg)
    # 6 classes: chance is 1/6. The ImageNet features make the head separable quickly.
    assert result.best["val_acc"] > 0.80, result.best
    assert result.best["val_f1"] > 0.75, result.best
    with (result.run_dir / "split.csv").open() as fh:
        val = [r for r in csv.DictReader(fh) if r["split"] == "val"]
    assert len(val) == 60 and {r["label"] for r in val} == set(CLASSES)

    # The bundle alone classifies the validation photos as well as training measured.
    model = Predictor.load(result.run_dir, device="cpu")
    images, ok, errors = model.load_images([r["path"] for r in val])
    assert not errors
    predicted = model.logits(images).argmax(1).tolist()
    correct = sum(model.class_names[p] == r["label"] for p, r in zip(predicted, val))
    assert correct / len(val) == pytest.approx(result.best["val_acc"], abs=1e-6)


LITE_WEIGHTS = SHARED / "weights" / "timm"


@pytest.mark.skipif(not LITE_WEIGHTS.is_dir(), reason=f"no {LITE_WEIGHTS}")
@pytest.mark.parametrize("recipe", ["best_cpu", "efficientnet_lite0"])
def test_the_lite_recipes_start_from_the_shared_imagenet_weights_offline(recipe, monkeypatch):
    """configs/best_cpu.yaml and efficientnet_lite0.yaml build their network as training does,
    from the shared Lite file (not a random start, not a download), with its mean = std = 0.5."""
    from safetensors.torch import load_file

    from scenes.training.setup import build_for_run

    monkeypatch.setenv("SCENES_WEIGHTS_DIR", str(SHARED / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(REPO / "configs" / f"{recipe}.yaml")
    built = build_for_run(cfg, CLASSES, None)
    arch = cfg.model.name.removeprefix("timm:")
    official = load_file(LITE_WEIGHTS / f"{arch}.in1k" / "model.safetensors")
    ours = built.module.state_dict()
    stem = "conv_stem.weight"
    assert torch.equal(ours[stem], official[stem].float())  # float16 file for Lite2: cast
    assert built.mean == built.std == [0.5, 0.5, 0.5] and built.interpolation == "bicubic"
    assert ours["classifier.weight"].shape[0] == len(CLASSES)
