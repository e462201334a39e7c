"""timm and Hugging Face backends: train -> bundle -> reload -> evaluate -> ONNX, preprocessing
equal to each backend's own processor, and offline behaviour (cache hits, clear errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenes.cli import main
from scenes.errors import UsageError, WeightsUnavailableError
from scenes.models.bundle import read_meta
from scenes.models.registry import build_model
from scenes.serve.predictor import Predictor

from conftest import make_folder, make_image

CLASSES = ["cat_a", "cat_b", "cat_c"]
TIMM_MODELS = ["timm:resnet10t", "timm:test_vit"]  # a CNN and a fixed-size ViT


def save_tiny_hf(
    directory: Path, num_labels: int = 5, image_size: int = 32, patch_size: int = 8, **processor
) -> Path:
    """A tiny randomly initialised ViT checkpoint + image processor, as save_pretrained writes."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
    )
    ViTForImageClassification(config).save_pretrained(directory)
    settings = {
        "size": {"height": image_size, "width": image_size},
        "image_mean": [0.5, 0.4, 0.3],
        "image_std": [0.2, 0.3, 0.4],
        "resample": Image.Resampling.BICUBIC,
        **processor,
    }
    ViTImageProcessor(**settings).save_pretrained(directory)
    return directory


def train_cli(data: Path, out: Path, model: str, image_size: int, *extra: str) -> int:
    return main(
        [
            "train",
            "--data",
            str(data),
            "--model",
            model,
            "--epochs",
            "1",
            "--image-size",
            str(image_size),
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--set",
            "data.val_fraction=0.25",
            "--set",
            "train.progress_bar=false",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def backend_runs(tmp_path_factory):
    """One tiny CLI training run per backend (timm CNN, timm ViT, HF ViT), shared by tests.

    The HF run starts from a local save_pretrained checkpoint with 5 labels (its classifier
    must be replaced for our 3) and trains at 40 px although the ViT was made for 32 px.
    """
    root = tmp_path_factory.mktemp("backends")
    data = make_folder(root / "data", CLASSES, 8)
    hf_dir = save_tiny_hf(root / "hf-tiny")
    specs = {
        "timm:resnet10t": ("timm:resnet10t", 32, "--no-pretrained"),
        "timm:test_vit": ("timm:test_vit", 32, "--no-pretrained"),
        "hf": (f"hf:{hf_dir}", 40),
    }
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCENES_CACHE", str(root / "cache"))
        for key, (model, size, *extra) in specs.items():
            out = root / key.replace(":", "-")
            assert train_cli(data, out, model, size, *extra) == 0, key
            runs[key] = out
    return {"data": data, "hf_dir": hf_dir, "runs": runs}


def checkpoint_logits(run: Path, batch: torch.Tensor) -> torch.Tensor:
    """Logits of the best Lightning checkpoint, rebuilt independently of the bundle."""
    meta = read_meta(run)
    built = build_model(
        meta.model_name,
        meta.num_classes,
        pretrained=False,
        image_size=meta.image_size,
        class_names=meta.class_names,
        backend_config=meta.backend_config,
    )
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    weights = {
        k.removeprefix("model."): v
        for k, v in state["state_dict"].items()
        if k.startswith("model.")
    }
    built.module.load_state_dict(weights)
    with torch.no_grad():
        return built.module.eval()(batch)


@pytest.mark.parametrize("key", [*TIMM_MODELS, "hf"])
def test_backend_trains_reloads_evaluates_and_exports(backend_runs, key):
    run = backend_runs["runs"][key]
    data = backend_runs["data"]
    meta = read_meta(run)
    assert meta.backend == key.split(":")[0]
    assert meta.class_names == CLASSES
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one epoch

    # The bundle alone rebuilds the exact trained network.
    model = Predictor.load(run, device="cpu")
    files = sorted(data.rglob("*.jpg"))
    images, ok, errors = model.load_images(files)
    assert not errors and images.shape[1:] == (meta.image_size, meta.image_size, 3)
    logits = torch.from_numpy(model.logits(images))
    assert logits.shape == (len(files), len(CLASSES))
    torch.testing.assert_close(
        logits, checkpoint_logits(run, model.to_input(images)), rtol=1e-4, atol=1e-5
    )

    # Evaluation through the shared API agrees with the bundle's own predictions.
    from scenes.evaluation.loop import evaluate

    result = evaluate(run, data=data, out=run / "eval")
    predicted = logits.argmax(1).numpy()
    truth = np.array([CLASSES.index(Path(f).parent.name) for f in files])
    assert result.class_names == CLASSES
    assert len(result.predictions) == len(files)
    assert sum(map(sum, result.confusion)) == len(files)
    assert result.accuracy == pytest.approx(float((predicted == truth).mean()), abs=1e-6)

    # ONNX export gives the same logits, at a batch size other than the traced one.
    import onnxruntime as ort

    from scenes.serve.formats import export

    onnx_path = export(run, "onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = model.to_input(images[:5]).contiguous().numpy()
    onnx_logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(onnx_logits, logits[:5].numpy(), rtol=1e-3, atol=1e-4)


def test_hf_bundle_records_labels_and_config(backend_runs):
    run = backend_runs["runs"]["hf"]
    raw = json.loads((run / "model" / "model.json").read_text())
    config = raw["backend_config"]
    assert config["model_type"] == "vit"
    assert config["id2label"] == {str(i): c for i, c in enumerate(CLASSES)}
    assert config["label2id"] == {c: i for i, c in enumerate(CLASSES)}
    # The bundle rebuilds without the checkpoint directory it was trained from.
    moved = backend_runs["hf_dir"].rename(backend_runs["hf_dir"].with_name("gone"))
    try:
        model = Predictor.load(run, device="cpu")
        assert model.module.hf.config.id2label == dict(enumerate(CLASSES))
        assert model.module.interpolate_pos_encoding  # 40 px on a ViT made for 32 px
    finally:
        moved.rename(backend_runs["hf_dir"])


# -- preprocessing recorded in model.json == the backend's own processor -----------------------


def own_image(path: Path, size: int) -> Path:
    """A lossless image already at the model's input size: no resize/crop differences."""
    return make_image(path, (120, 90, 200), size=(size, size), seed=3)


@pytest.mark.parametrize("key", TIMM_MODELS)
def test_timm_preprocessing_matches_timm_transform(backend_runs, key, tmp_path):
    import timm
    from timm.data import create_transform, resolve_data_config

    run = backend_runs["runs"][key]
    model = Predictor.load(run, device="cpu")
    size = model.meta.image_size
    reference = resolve_data_config(model=timm.create_model(key.split(":")[1], pretrained=False))
    # Our pipeline squashes the whole image (no crop): timm's equivalent is crop_pct=1.
    transform = create_transform(
        input_size=(3, size, size),
        interpolation=reference["interpolation"],
        mean=reference["mean"],
        std=reference["std"],
        crop_pct=1.0,
    )
    path = own_image(tmp_path / "x.png", size)
    theirs = transform(Image.open(path).convert("RGB"))
    ours = model.to_input(model.load_image(path)[None])[0]
    assert model.meta.interpolation == reference["interpolation"]
    torch.testing.assert_close(ours.contiguous(), theirs, rtol=0, atol=1e-5)


def hf_reference(processor_dir: Path, path: Path) -> torch.Tensor:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(processor_dir)
    return processor(images=Image.open(path).convert("RGB"), return_tensors="pt").pixel_values[0]


def test_hf_preprocessing_matches_image_processor(backend_runs, tmp_path):
    run = backend_runs["runs"]["hf"]
    model = Predictor.load(run, device="cpu")
    path = own_image(tmp_path / "x.png", model.meta.image_size)
    ours = model.to_input(model.load_image(path)[None])[0]
    processor_dir = tmp_path / "processor"
    # Same processor settings as the checkpoint's, at the training size (no resize).
    save_tiny_hf(processor_dir, image_size=model.meta.image_size)
    assert model.meta.interpolation == "bicubic"
    torch.testing.assert_close(
        ours.contiguous(), hf_reference(processor_dir, path), atol=1e-5, rtol=0
    )


def test_hf_preprocessing_follows_an_unusual_rescale(tmp_path):
    """A processor mapping pixels to [-1, 1] via rescale 1/127.5 and mean 1 is reproduced."""
    from scenes.models.bundle import save_bundle
    from scenes.models.meta import BundleMeta

    hf_dir = save_tiny_hf(
        tmp_path / "hf",
        rescale_factor=1 / 127.5,
        image_mean=[1.0, 1.0, 1.0],
        image_std=[1.0, 1.0, 1.0],
        resample=Image.Resampling.NEAREST,
    )
    built = build_model(f"hf:{hf_dir}", 3, pretrained=True, class_names=CLASSES, image_size=32)
    assert built.interpolation == "nearest"
    meta = BundleMeta.of(built, CLASSES, 32)
    bundle = save_bundle(built.module, meta, tmp_path / "bundle")
    model = Predictor.load(bundle, device="cpu")
    path = own_image(tmp_path / "x.png", 32)
    ours = model.to_input(model.load_image(path)[None])[0]
    torch.testing.assert_close(ours.contiguous(), hf_reference(hf_dir, path), atol=1e-5, rtol=0)


# -- offline ------------------------------------------------------------------------------------


def put_in_hf_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """The layout huggingface_hub's own downloads leave in HF_HUB_CACHE."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty HF cache and no network: HF_HUB_OFFLINE makes any HTTP call raise."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def network_down(*args, **kwargs):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError(
        "Cannot reach https://huggingface.co and the file is not in the local cache"
    )


def assert_both_ways_out(message: str) -> None:
    assert "--no-pretrained" in message
    assert "--weights FILE" in message


def test_timm_missing_weights_say_how_to_proceed(monkeypatch, synthetic_folder, tmp_path, capsys):
    import timm.models._hub as timm_hub

    monkeypatch.setattr(timm_hub, "hf_hub_download", network_down)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("timm:resnet10t", 3, pretrained=True)
    assert "timm/resnet10t" in str(info.value)
    assert_both_ways_out(str(info.value))
    # Through the CLI: one clear line of error, exit code 2, no traceback.
    code = train_cli(synthetic_folder, tmp_path / "run", "timm:resnet10t", 32)
    err = capsys.readouterr().err
    assert code == 2
    assert "could not get pretrained weights" in err and "Traceback" not in err
    assert_both_ways_out(err)


def test_timm_weights_in_cache_load_offline(empty_hf_cache, tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    imagenet = timm.create_model("resnet10t", pretrained=False)  # 1000 classes, like the file
    save_file(imagenet.state_dict(), str(tmp_path / "model.safetensors"))
    put_in_hf_cache(
        empty_hf_cache,
        "timm/resnet10t.c3_in1k",
        {"model.safetensors": tmp_path / "model.safetensors"},
    )
    built = build_model("timm:resnet10t", 3, pretrained=True)
    assert built.weights == "timm:resnet10t.c3_in1k"
    assert built.head == "fc" and built.module.fc.out_features == 3
    torch.testing.assert_close(built.module.conv1[0].weight, imagenet.conv1[0].weight)


def test_timm_unknown_names_and_tags_fail_clearly():
    with pytest.raises(ValueError, match="unknown timm model 'resnetzz'"):
        build_model("timm:resnetzz", 3, pretrained=False)
    with pytest.raises(ValueError, match="Known tags: .*c3_in1k"):
        build_model("timm:resnet10t", 3, pretrained=True, weights="nope")


@pytest.fixture
def hf_hub_checkpoint(tmp_path) -> tuple[str, Path]:
    return "tiny-org/tiny-vit", save_tiny_hf(tmp_path / "hub-tiny")


def test_hf_weights_in_cache_load_offline(empty_hf_cache, hf_hub_checkpoint):
    from transformers import AutoModelForImageClassification

    repo_id, saved = hf_hub_checkpoint
    put_in_hf_cache(empty_hf_cache, repo_id, {p.name: p for p in saved.iterdir()})
    built = build_model(f"hf:{repo_id}", 3, pretrained=True, class_names=CLASSES, image_size=32)
    original = AutoModelForImageClassification.from_pretrained(saved)
    torch.testing.assert_close(
        built.module.hf.vit.embeddings.patch_embeddings.projection.weight,
        original.vit.embeddings.patch_embeddings.projection.weight,
    )
    assert built.module.hf.config.id2label == dict(enumerate(CLASSES))
    assert built.mean == pytest.approx([0.5, 0.4, 0.3]) and built.interpolation == "bicubic"


def test_hf_missing_weights_say_how_to_proceed(monkeypatch, empty_hf_cache, hf_hub_checkpoint):
    import transformers.utils.hub as tf_hub

    monkeypatch.setattr(tf_hub, "hf_hub_download", network_down)
    monkeypatch.setattr(tf_hub, "snapshot_download", network_down)
    repo_id, saved = hf_hub_checkpoint
    # Config and processor were cached earlier; the weights never were.
    cached = {p.name: p for p in saved.iterdir() if p.suffix == ".json"}
    put_in_hf_cache(empty_hf_cache, repo_id, cached)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(f"hf:{repo_id}", 3, pretrained=True, class_names=CLASSES)
    assert "pretrained weights of hf:tiny-org/tiny-vit" in str(info.value)
    assert_both_ways_out(str(info.value))
    # Nothing cached at all: the config is missing, and the message is just as clear.
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("hf:other-org/not-cached", 3, pretrained=True, class_names=CLASSES)
    assert "config" in str(info.value)
    assert_both_ways_out(str(info.value))


def test_hf_model_that_cannot_take_the_size_fails_clearly(tmp_path):
    """A ViT with 64 px patches has no patch at all in a 32 px image."""
    hf_dir = save_tiny_hf(tmp_path / "hf", image_size=128, patch_size=64)
    with pytest.raises(ValueError, match="cannot take 32 px images.*--image-size 128"):
        build_model(f"hf:{hf_dir}", 3, pretrained=False, class_names=CLASSES, image_size=32)


def test_torchvision_default_backend_unchanged():
    plain = build_model("resnet18", 4, pretrained=False)
    prefixed = build_model("torchvision:resnet18", 4, pretrained=False)
    assert plain.backend == prefixed.backend == "torchvision"
    assert plain.head == prefixed.head == "fc" and plain.backend_config is None


def test_gpu_recipe_names_a_real_timm_model_and_tag():
    from timm.models import get_pretrained_cfg

    from scenes.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "convnext_tiny_gpu.yaml")
    assert cfg.model.name == "timm:convnext_tiny"
    tagged = f"convnext_tiny.{cfg.model.weights}"
    assert get_pretrained_cfg(tagged).hf_hub_id == f"timm/{tagged}"
    built = build_model(cfg.model.name, 6, pretrained=False, image_size=cfg.data.image_size)
    assert built.head == "head.fc" and built.interpolation == "bicubic"


@pytest.mark.parametrize("key", ["timm:resnet10t", "hf"])
def test_the_hub_folder_loads_back_offline_with_the_backbones_library(
    backend_runs, key, tmp_path, monkeypatch
):
    """`scenes export --format hf`: the folder serves through scenes and loads, offline, with
    timm's create_model("local-dir:...") or transformers' from_pretrained, giving the same
    logits as the bundle."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = backend_runs["runs"][key]
    folder = tmp_path / "hub"
    assert main(["export", "--run", str(run), "--format", "hf", "--out", str(folder)]) == 0
    photo = make_image(tmp_path / "p.jpg", (200, 60, 40), size=(50, 40))
    bundle = Predictor.load(run, device="cpu")
    x = bundle.to_input(bundle.load_image(photo)[None]).contiguous()
    with torch.no_grad():
        expected = bundle.module(x)
        if key == "hf":
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            model = AutoModelForImageClassification.from_pretrained(folder).eval()
            assert model.config.id2label == dict(enumerate(CLASSES))
            got = model(pixel_values=x, interpolate_pos_encoding=True).logits
            processor = AutoImageProcessor.from_pretrained(folder)
            assert list(processor.image_mean) == pytest.approx(bundle.meta.mean)
        else:
            import timm

            model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
            assert model.pretrained_cfg["label_names"] == CLASSES
            assert model.pretrained_cfg["mean"] == pytest.approx(tuple(bundle.meta.mean))
            got = model(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    again = Predictor.load(folder, device="cpu")  # and it is a scenes bundle
    assert dict(again.predict(photo)) == pytest.approx(dict(bundle.predict(photo)), abs=1e-6)
    card = (folder / "README.md").read_text()
    library = "transformers" if key == "hf" else "timm"
    assert f"library_name: {library}" in card
    assert ("from_pretrained" if key == "hf" else "timm.create_model") in card


def test_hf_model_defined_by_its_own_code_is_refused_and_the_code_never_runs(tmp_path):
    """A Hub folder whose config names its own Python classes (auto_map): loading it would run
    that code. It is refused with a message naming the model, and the code does not run."""
    import json

    hf_dir = save_tiny_hf(tmp_path / "remote-code")
    ran = tmp_path / "code-ran"
    config = json.loads((hf_dir / "config.json").read_text())
    config["model_type"] = "own-code"
    config["auto_map"] = {
        "AutoConfig": "configuration_own.OwnConfig",
        "AutoModelForImageClassification": "modeling_own.OwnModel",
    }
    (hf_dir / "config.json").write_text(json.dumps(config))
    planted = f"open({str(ran)!r}, 'w').write('ran')\n"
    (hf_dir / "configuration_own.py").write_text(
        planted + "from transformers import ViTConfig as OwnConfig\n"
    )
    (hf_dir / "modeling_own.py").write_text(
        planted + "from transformers import ViTForImageClassification as OwnModel\n"
    )
    with pytest.raises(UsageError, match=f"hf:{hf_dir} is defined by the repository's own"):
        build_model(f"hf:{hf_dir}", 3, pretrained=True, class_names=CLASSES, image_size=32)
    assert not ran.exists()
