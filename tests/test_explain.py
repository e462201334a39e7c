"""Class-activation maps: the target layer of every backend, heatmaps that point at the
evidence, explain leaving predictions alone, and the `scenes explain` command."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenes import plots
from scenes.choices import CAM_METHODS
from scenes.cli import main
from scenes.models import build_model, save_bundle
from scenes.models.cam_target import CamTarget, CamTargetError, find_cam_target
from scenes.models.meta import BundleMeta
from scenes.models.registry import load_weights_file
from scenes.serve.heatmaps import Explainer
from scenes.serve.predictor import Predictor

from conftest import INTEL_TRAIN, MOBILENET_FILE, make_folder, make_image, needs_intel
from test_backends import save_tiny_hf

CLASSES = ["cat_a", "cat_b", "cat_c"]


def random_bundle(name: str, size: int, directory: Path, classes=CLASSES) -> Predictor:
    """A random-weight bundle as `scenes train` would write it (channels_last included)."""
    torch.manual_seed(0)
    built = build_model(name, len(classes), pretrained=False, image_size=size, class_names=classes)
    meta = BundleMeta.of(built, classes, size)
    return Predictor.load(save_bundle(built.module, meta, directory), device="cpu")


def noise(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- the layer chosen per family ------------------------------------------------------------


def hf_checkpoint(root: Path, kind: str) -> Path:
    """Tiny random Hugging Face checkpoints of four families, as save_pretrained writes them."""
    import transformers as tf

    if kind == "vit":
        return save_tiny_hf(root / kind)
    vit_like = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    model = {
        "deit": lambda: tf.DeiTForImageClassification(tf.DeiTConfig(**vit_like)),
        "beit": lambda: tf.BeitForImageClassification(
            tf.BeitConfig(**vit_like, use_mean_pooling=False)
        ),
        "dinov2": lambda: tf.Dinov2ForImageClassification(tf.Dinov2Config(**vit_like)),
        "convnext": lambda: tf.ConvNextForImageClassification(
            tf.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=3)
        ),
        "swin": lambda: tf.SwinForImageClassification(
            tf.SwinConfig(
                image_size=64,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1],
                num_heads=[2, 2],
                window_size=4,
                num_labels=3,
            )
        ),
    }[kind]()
    model.save_pretrained(root / kind)
    return root / kind


# (model, input size, expected target). CNNs: the last stage at stride 32 (150 px -> 5x5);
# token models: the input norm of the last attention block, class/distillation tokens dropped.
FAMILIES = [
    ("mobilenet_v2", 150, CamTarget("features", "nchw", 5)),
    ("resnet18", 150, CamTarget("layer4", "nchw", 5)),
    ("efficientnet_b0", 150, CamTarget("features", "nchw", 5)),
    ("convnext_tiny", 150, CamTarget("features", "nchw", 4)),
    ("swin_t", 224, CamTarget("permute", "nchw", 7)),
    ("vit_b_16", 224, CamTarget("encoder.layers.encoder_layer_11.ln_1", "tokens", 14, 1)),
    ("timm:resnet10t", 150, CamTarget("layer4", "nchw", 5)),
    ("timm:test_convnext", 64, CamTarget("stages", "nchw", 2)),
    ("timm:test_vit", 64, CamTarget("blocks.5.norm1", "tokens", 4, 1)),
    ("timm:test_vit3", 64, CamTarget("norm", "tokens", 4, 1)),  # attention-pooling head
    ("timm:test_vit_relpos", 64, CamTarget("blocks.8.norm1", "tokens", 4, 0)),  # no class token
    ("timm:test_coatnet", 64, CamTarget("norm", "nchw", 2)),  # convolution + attention stages
    ("hf:vit", 64, CamTarget("hf.vit.layers.1.layernorm_before", "tokens", 8, 1)),
    ("hf:deit", 64, CamTarget("hf.deit.layers.1.layernorm_before", "tokens", 8, 2)),
    ("hf:beit", 64, CamTarget("hf.beit.layers.1.layernorm_before", "tokens", 8, 1)),
    ("hf:dinov2", 64, CamTarget("hf.dinov2.encoder.layer.1.norm1", "tokens", 8, 1)),
    ("hf:convnext", 64, CamTarget("hf.convnext.encoder.stages.3", "nchw", 2)),
    (
        "hf:swin",
        64,
        CamTarget("hf.swin.encoder.layers.1.blocks.0.layernorm_before", "tokens", 8, 0),
    ),
]


@pytest.mark.parametrize("name, size, expected", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_target_layer_is_chosen_per_family(name, size, expected, tmp_path):
    if name.startswith("hf:"):
        name = f"hf:{hf_checkpoint(tmp_path, name[3:])}"
    built = build_model(name, 3, pretrained=False, image_size=size, class_names=CLASSES)
    assert find_cam_target(built.module, size) == expected


# -- every backend: a heatmap of the input's size that a wrong layer would not give ----------

BACKENDS = {
    "torchvision": ("resnet18", 96, "layer4"),
    "timm CNN": ("timm:resnet10t", 96, "layer4"),
    "timm ViT": ("timm:test_vit", 64, "blocks.5.norm1"),
    "hf ViT": ("hf:vit", 64, "hf.vit.layers.1.layernorm_before"),
}
# Layers after the last attention: the patch tokens reach the classifier only through the
# class token there, so they get no gradient and Grad-CAM is blank (what the choice avoids).
BLANK_LAYERS = {
    "timm ViT": ["blocks.5.norm2", "norm"],
    "hf ViT": ["hf.vit.layers.1.layernorm_after", "hf.vit.layernorm"],
}


@pytest.fixture(scope="module")
def backend_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("cam-bundles")
    bundles = {}
    for key, (name, size, _) in BACKENDS.items():
        if name == "hf:vit":
            name = f"hf:{save_tiny_hf(root / 'hf-vit', num_labels=3)}"
        bundles[key] = random_bundle(name, size, root / key.replace(" ", "-"))
    return bundles


@pytest.mark.parametrize("key", list(BACKENDS))
def test_each_backend_explains_on_its_target_layer(backend_bundles, key):
    model = backend_bundles[key]
    size = model.meta.image_size
    explainer = Explainer(model)
    assert explainer.target.layer == BACKENDS[key][2]
    pixels = noise(4, size)
    maps = explainer.heatmaps(pixels, [0, 1, 2, 0])
    assert maps.shape == (4, size, size) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    spread = maps.std(axis=(1, 2))
    assert spread.max() > 0.05, "every heatmap is flat: the layer carries no location"
    # A different image gives a different map: the map follows the input, not the layer alone.
    assert not np.allclose(maps[0], Explainer(model).heatmaps(noise(1, size, seed=9), [0])[0])
    for layer in BLANK_LAYERS.get(key, []):
        blank = Explainer(model, target_layer=layer).heatmaps(pixels, [0, 1, 2, 0])
        assert blank.std(axis=(1, 2)).max() < 1e-6, layer


def test_predictor_explain_on_a_timm_vit(backend_bundles, tmp_path):
    model = backend_bundles["timm ViT"]
    predictor = model  # random_bundle gives a Predictor
    photo = make_image(tmp_path / "x.png", (200, 40, 40), size=(80, 80))
    top, heatmap = predictor.explain(photo)
    assert top == predictor.predict(photo)
    assert heatmap.shape == (64, 64) and heatmap.std() > 0.05


# -- heatmaps point at the evidence: real ImageNet weights, a photo beside a blank half -------


@needs_intel
@pytest.mark.skipif(not MOBILENET_FILE.is_file(), reason=f"no {MOBILENET_FILE}")
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_heatmap_covers_the_photo_not_the_blank_half(method, imagenet_predictor):
    """The ImageNet MobileNetV2 (its own 1000 classes): the top class's evidence is in the
    half that holds a photo, whichever side it is on."""
    for cls in ("forest", "street", "sea"):
        path = sorted((INTEL_TRAIN / cls).iterdir())[0]
        half = np.asarray(Image.open(path).convert("RGB").resize((80, 160)))
        for side in (0, 1):
            canvas = np.full((160, 160, 3), 124, np.uint8)
            canvas[:, side * 80 : (side + 1) * 80] = half
            _, heatmap = imagenet_predictor.explain(Image.fromarray(canvas), method=method)
            photo = heatmap[:, side * 80 : (side + 1) * 80].mean()
            blank = heatmap[:, (1 - side) * 80 : (2 - side) * 80].mean()
            assert photo > 1.5 * blank, (cls, side, photo, blank)


@pytest.fixture(scope="module")
def imagenet_predictor(tmp_path_factory) -> Predictor:
    if not MOBILENET_FILE.is_file():
        pytest.skip(f"no {MOBILENET_FILE}")
    built = build_model("mobilenet_v2", 1000, pretrained=False)
    load_weights_file(built, MOBILENET_FILE)  # the ImageNet classifier fits: 1000 classes
    names = [f"imagenet_{i}" for i in range(1000)]
    meta = BundleMeta.of(built, names, 160)
    bundle = save_bundle(built.module, meta, tmp_path_factory.mktemp("imagenet") / "model")
    return Predictor.load(bundle)


# -- explain leaves the serving model alone -----------------------------------------------------


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor.load(trained_run)


def test_explain_does_not_change_predictions_or_the_model(predictor, tmp_path):
    photos = [
        make_image(tmp_path / f"{i}.jpg", c, seed=i)
        for i, c in enumerate([(220, 40, 40), (40, 200, 40), (40, 40, 220)])
    ]
    module = predictor.module
    state = {k: v.clone() for k, v in module.state_dict().items()}
    before = [predictor.predict(p) for p in photos]
    for p in photos:
        top, heatmap = predictor.explain(p)
        assert top == predictor.predict(p)
        assert heatmap.shape == (32, 32)
    assert [predictor.predict(p) for p in photos] == before
    assert not module.training
    assert all(p.grad is None for p in module.parameters())
    assert not any(m._forward_hooks for m in module.modules())
    for key, value in module.state_dict().items():  # BatchNorm statistics included
        assert torch.equal(value, state[key]), key


def test_explain_a_chosen_class_and_reject_an_unknown_one(predictor, tmp_path):
    photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
    top, own = predictor.explain(photo)
    assert top[0][0] == "cat_a"
    _, other = predictor.explain(photo, class_name="cat_c")
    assert not np.allclose(own, other)
    with pytest.raises(ValueError, match="unknown class 'dog'.*cat_a, cat_b, cat_c"):
        predictor.explain(photo, class_name="dog")


def test_explain_works_inside_inference_mode(predictor):
    pixels = noise(1, 32)
    expected = predictor.explainer().heatmaps(pixels, [1])
    with torch.inference_mode():
        np.testing.assert_allclose(predictor.explainer().heatmaps(pixels, [1]), expected)


def test_every_method_gives_a_map_and_an_unknown_one_is_named(predictor):
    pixels = noise(2, 32)
    for method in CAM_METHODS:
        maps = Explainer(predictor, method).heatmaps(pixels, [0, 1])
        assert maps.shape == (2, 32, 32) and np.isfinite(maps).all(), method
    with pytest.raises(ValueError, match="unknown --method 'gradcan'.*gradcam, gradcam\\+\\+"):
        Explainer(predictor, "gradcan")


def test_two_threads_explaining_at_once_get_their_own_maps(predictor):
    """The app serves two requests at a time through one explainer."""
    explainer = predictor.explainer()
    images = [noise(1, 32, seed=s) for s in range(6)]
    expected = [explainer.heatmaps(x, [0])[0] for x in images]
    got: dict[int, np.ndarray] = {}

    def work(indices):
        for _ in range(3):
            for i in indices:
                got[i] = explainer.heatmaps(images[i], [0])[0]

    threads = [threading.Thread(target=work, args=(r,)) for r in (range(0, 3), range(3, 6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, heatmap in enumerate(expected):
        np.testing.assert_allclose(got[i], heatmap, atol=1e-5)


def test_onnx_predictor_explains_with_its_own_top_classes(fresh_run, tmp_path):
    onnx = Predictor.load(fresh_run, backend="onnx")
    photo = make_image(tmp_path / "g.png", (40, 200, 40))
    top, heatmap = onnx.explain(photo)
    assert top == onnx.predict(photo) and top[0][0] == "cat_b"
    assert heatmap.shape == (32, 32)


# -- choosing the layer by hand -------------------------------------------------------------


def test_target_layer_override_and_its_errors(predictor):
    model = predictor
    assert Explainer(model, target_layer="layer3").target == CamTarget("layer3", "nchw", 2)
    with pytest.raises(CamTargetError, match="no layer 'layer5'; similar: layer"):
        Explainer(model, target_layer="layer5")
    with pytest.raises(CamTargetError, match="runs 2 times per image"):
        Explainer(model, target_layer="layer4.0.relu")  # torchvision reuses one ReLU
    with pytest.raises(CamTargetError, match=r"'fc' outputs \(1, 3\)"):
        Explainer(model, target_layer="fc")


def test_reshapes_put_channels_first_and_drop_prefix_tokens():
    nhwc = torch.arange(2 * 3 * 3 * 4.0).reshape(2, 3, 3, 4)
    out = CamTarget("x", "nhwc", 3).reshape_transform()(nhwc)
    assert out.shape == (2, 4, 3, 3) and torch.equal(out[1, 2], nhwc[1, :, :, 2])
    tokens = torch.randn(2, 2 + 9, 5)  # class + distillation token, then a 3x3 grid
    grid = CamTarget("x", "tokens", 3, prefix_tokens=2).reshape_transform()(tokens)
    assert grid.shape == (2, 5, 3, 3)
    assert torch.equal(grid[0, :, 1, 2], tokens[0, 2 + 1 * 3 + 2])  # row 1, column 2
    assert CamTarget("x", "nchw", 3).reshape_transform() is None


# -- scenes explain and scenes evaluate --explain -----------------------------------------------


def test_cli_explain_writes_a_figure_per_image_and_a_grid(trained_run, tmp_path, capsys):
    folder = make_folder(tmp_path / "photos", ["x", "y"], 2)
    (folder / "y" / "000.jpg").rename(folder / "y" / "grid.jpg")  # must not clash with the grid
    single = make_image(tmp_path / "000.png", (40, 40, 220))  # same stem as x/000.jpg
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    out = tmp_path / "out"
    args = ["explain", "--run", str(trained_run), str(folder), str(single), str(broken)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["000-2.png", "000.png", "001-2.png", "001.png", "grid-2.png", "grid.png"]
    with (out / "index.csv").open(newline="") as fh:
        index = {row["path"]: row for row in csv.DictReader(fh)}
    assert index[str(single)]["figure"] == "000-2.png" and index[str(broken)]["error"]
    for name in names:  # the grid holds the 5 readable photos
        size = plots.grid_pixel_size(5) if name == "grid.png" else plots.pixel_size("explanation")
        with Image.open(out / name) as image:
            assert image.size == size, name
    assert "ERROR" in printed and "broken.jpg" in printed and "1 file could not be read" in printed
    assert "cat_c" in printed  # the blue single photo's top class
    # At 32 px resnet18's layer4 is 1x1 (no location): the last larger map is used.
    assert "gradcam on layer layer3" in printed

    assert main([*args[:3], str(single), "--class", "cat_a", "--out", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").glob("*.png")) == ["000.png"]  # no grid of one
    assert main([*args[:3], str(single), "--class", "dog"]) == 2
    assert "unknown class 'dog'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # the parser knows the methods
        main([*args[:3], str(single), "--method", "magic"])
    assert refused.value.code == 2 and "invalid choice: 'magic'" in capsys.readouterr().err
    assert main([*args[:3], str(single), "--target-layer", "layer9"]) == 2
    assert "no layer 'layer9'" in capsys.readouterr().err


def test_cli_explain_default_output_is_in_the_run(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    photo = make_image(tmp_path / "p.jpg", (220, 40, 40))
    assert main(["explain", "--run", str(run / "model"), str(photo)]) == 0
    assert (run / "explain" / "p.png").is_file()


def test_evaluate_explain_overlays_heatmaps_on_the_error_grid(trained_run, tmp_path):
    from scenes.evaluation.loop import evaluate

    swapped = make_folder(tmp_path / "swapped", CLASSES, 4, seed=9)
    (swapped / "cat_a").rename(swapped / "tmp")
    (swapped / "cat_b").rename(swapped / "cat_a")
    (swapped / "tmp").rename(swapped / "cat_b")
    plain = evaluate(trained_run, data=swapped, out=tmp_path / "plain")
    explained = evaluate(trained_run, data=swapped, out=tmp_path / "explained", explain=True)
    assert explained.accuracy == plain.accuracy  # the numbers do not change
    with (
        Image.open(tmp_path / "plain" / "errors.png") as a,
        Image.open(tmp_path / "explained" / "errors.png") as b,
    ):
        assert a.size == b.size
        diff = np.abs(np.asarray(a.convert("RGB"), float) - np.asarray(b.convert("RGB"), float))
    assert diff.mean() > 5  # the heatmap colours are over the photos
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(trained_run),
                "--data",
                str(swapped),
                "--explain",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / "errors.png").is_file()
