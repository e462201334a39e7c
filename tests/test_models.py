from urllib.error import URLError

import pytest
import torch

from scenes.errors import WeightsUnavailableError
from scenes.models import build_model, load_bundle, save_bundle
from scenes.models.meta import BundleMeta
from scenes.models.registry import BACKENDS, split_name

from conftest import MOBILENET_FILE, needs_weights


@pytest.mark.parametrize(
    "name, head",
    [("resnet18", "fc"), ("mobilenet_v2", "classifier.1"), ("efficientnet_b0", "classifier.1")],
)
def test_any_torchvision_model_gets_a_head_for_n_classes(name, head):
    built = build_model(name, 5, pretrained=False)
    assert built.head == head
    assert built.module.get_submodule(head).out_features == 5
    with torch.no_grad():
        assert built.module.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 5)


def test_head_and_backbone_parameters_partition_the_model():
    built = build_model("resnet18", 3, pretrained=False)
    head, backbone = built.head_parameters(), built.backbone_parameters()
    assert len(head) == 2  # weight and bias of fc
    assert len(head) + len(backbone) == len(list(built.module.parameters()))


def test_unknown_model_and_backend_are_clear():
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet19'.*resnet18"):
        build_model("resnet19", 3, pretrained=False)
    with pytest.raises(ValueError, match="unknown model backend 'keras'"):
        split_name("keras:resnet50")
    assert split_name("resnet50") == ("torchvision", "resnet50")
    assert "torchvision" in BACKENDS


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_missing_weights_offline_name_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    _offline(monkeypatch)
    with pytest.raises(WeightsUnavailableError) as err:
        build_model("resnet18", 3, pretrained=True)
    message = str(err.value)
    assert "--weights FILE" in message and "--no-pretrained" in message
    assert "resnet18-f37072fd.pth" in message and "empty_torch_home" in message


def test_bad_weights_name_lists_the_choices():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        build_model("mobilenet_v2", 3, weights="IMAGENET9K")


@needs_weights
def test_offline_default_falls_back_to_cached_imagenet_weights(offline_weights, monkeypatch):
    _offline(monkeypatch)  # DEFAULT (V2) cannot be fetched, V1 is in TORCH_HOME
    built = build_model("mobilenet_v2", 6, pretrained=True)
    assert built.weights.startswith("torchvision:MobileNet_V2_Weights.IMAGENET1K_V1 (")
    reference = torch.load(MOBILENET_FILE, map_location="cpu", weights_only=True)
    own = built.module.state_dict()
    assert torch.equal(own["features.0.0.weight"], reference["features.0.0.weight"])
    assert own["classifier.1.weight"].shape == (6, 1280)
    assert built.mean == [0.485, 0.456, 0.406]


@needs_weights
def test_weights_file_loads_backbone_and_keeps_new_head():
    built = build_model("mobilenet_v2", 4, pretrained=True, weights_file=MOBILENET_FILE)
    reference = torch.load(MOBILENET_FILE, map_location="cpu", weights_only=True)
    own = built.module.state_dict()
    assert torch.equal(own["features.18.0.weight"], reference["features.18.0.weight"])
    assert own["classifier.1.weight"].shape == (4, 1280)
    assert built.weights.startswith("file:")


@needs_weights
def test_weights_file_of_another_architecture_is_rejected():
    with pytest.raises(ValueError, match="does not fit resnet18"):
        build_model("resnet18", 4, weights_file=MOBILENET_FILE)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("resnet18", 4, weights_file="nope.pth")


def test_bundle_round_trip_reproduces_logits(tmp_path):
    built = build_model("resnet18", 3, pretrained=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in built.module.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    module = built.module.eval()
    meta = BundleMeta.of(built, ["x", "y", "z"], 32)
    save_bundle(module, meta, tmp_path / "model")
    loaded, loaded_meta = load_bundle(tmp_path)  # a run dir holding model/ works too
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), module(x), atol=1e-5)
    assert loaded_meta.class_names == ["x", "y", "z"]
    with pytest.raises(FileNotFoundError, match="no model bundle"):
        load_bundle(tmp_path / "elsewhere")


@needs_weights
def test_a_local_weights_folder_is_searched_by_file_name(tmp_path, monkeypatch):
    """SCENES_WEIGHTS_DIR (or model.weights_dir) holding the official file: used offline,
    and DEFAULT takes the best weights present there without trying the network."""
    _offline(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / MOBILENET_FILE.name).symlink_to(MOBILENET_FILE)
    monkeypatch.setenv("SCENES_WEIGHTS_DIR", str(folder))
    reference = torch.load(MOBILENET_FILE, map_location="cpu", weights_only=True)
    for weights in ("IMAGENET1K_V1", "DEFAULT"):
        built = build_model("mobilenet_v2", 6, pretrained=True, weights=weights)
        assert built.weights == (
            f"torchvision:MobileNet_V2_Weights.IMAGENET1K_V1 ({folder / MOBILENET_FILE.name})"
        )
        own = built.module.state_dict()
        assert torch.equal(own["features.18.0.weight"], reference["features.18.0.weight"])
    # the config's folder comes first
    monkeypatch.setenv("SCENES_WEIGHTS_DIR", str(tmp_path / "nowhere"))
    built = build_model("mobilenet_v2", 6, weights="IMAGENET1K_V1", weights_dir=str(folder))
    assert str(folder) in built.weights
    # nothing anywhere: the error names the file and every folder searched
    with pytest.raises(WeightsUnavailableError) as err:
        build_model("mobilenet_v2", 6, weights="IMAGENET1K_V1")
    assert MOBILENET_FILE.name in str(err.value) and "nowhere" in str(err.value)


def test_a_wrong_file_under_an_official_name_is_a_clear_error(tmp_path, monkeypatch):
    _offline(monkeypatch)
    folder = tmp_path / "weights"
    folder.mkdir()
    impostor = folder / "mobilenet_v2-b0353104.pth"
    torch.save(build_model("resnet18", 3, pretrained=False).module.state_dict(), impostor)
    with pytest.raises(WeightsUnavailableError, match="has the name of torchvision's") as err:
        build_model("mobilenet_v2", 6, weights="IMAGENET1K_V1", weights_dir=str(folder))
    assert "download.pytorch.org" in str(err.value)


def test_timm_and_hf_weights_are_found_in_the_local_folder(tmp_path, monkeypatch):
    """timm: <hf_hub_id>/model.safetensors (the hub's layout); Hugging Face: <id>/ folder."""
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    from test_backends import save_tiny_hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "weights"
    cfg = get_pretrained_cfg("resnet10t")
    source = build_model("timm:resnet10t", 1000, pretrained=False).module.state_dict()
    target = folder / cfg.hf_hub_id / "model.safetensors"
    target.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.items()}, str(target))
    built = build_model("timm:resnet10t", 3, pretrained=True, weights_dir=str(folder))
    assert str(target) in built.weights
    assert torch.equal(built.module.state_dict()["conv1.0.weight"], source["conv1.0.weight"])

    save_tiny_hf(folder / "acme" / "tiny-vit", num_labels=5)
    built = build_model("hf:acme/tiny-vit", 3, pretrained=True, weights_dir=str(folder))
    assert str(folder / "acme" / "tiny-vit") in built.weights
