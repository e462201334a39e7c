"""`scenes models [PATTERN]`: the names `--model` accepts, per backend."""

from __future__ import annotations

import pytest
import torch

from scenes.cli import main
from scenes.models.listing import list_models
from scenes.models.registry import build_model


def listed(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["models", *args])
    out = capsys.readouterr().out
    return code, [line.strip() for line in out.splitlines()]


def test_resnet_pattern_lists_torchvision_names(capsys):
    code, lines = listed(capsys, "resnet*")
    assert code == 0
    for name in ("resnet18", "resnet50", "resnet101"):
        assert name in lines
    assert "wide_resnet50_2" not in lines  # a glob, not a substring search
    assert "mobilenet_v2" not in lines
    # timm's ResNets match too, with the prefix that --model needs.
    assert "timm:resnet10t" in lines


def test_timm_pattern_lists_only_timm_names(capsys):
    code, lines = listed(capsys, "timm:convnext*")
    assert code == 0
    assert "timm:convnext_tiny" in lines and "timm:convnext_base" in lines
    assert not any(line == "resnet50" for line in lines)
    names = [line for line in lines if line.startswith("timm:")]
    assert names and all(n.startswith("timm:convnext") for n in names)


def test_every_listed_name_builds():
    """What is listed can be named: build one from each list at random init."""
    found = list_models("*resnet1*")
    for name in (found["torchvision"][0], "timm:resnet10t"):
        assert name in found["torchvision"] + found["timm"]
        module = build_model(name, 2, pretrained=False).module.eval()
        assert module(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_timm_tag_pattern_lists_pretrained_weights():
    names = list_models("timm:convnext_tiny.*")["timm"]
    assert "timm:convnext_tiny.in12k_ft_in1k" in names
    assert all(n.startswith("timm:convnext_tiny.") for n in names)


def test_no_pattern_lists_torchvision_and_explains_timm_and_hf(capsys):
    code, lines = listed(capsys)
    text = "\n".join(lines)
    assert code == 0
    assert "mobilenet_v2" in lines and "efficientnet_b0" in lines
    assert "scenes models 'timm:*'" in text
    assert "save_pretrained" in text and "hf:" in text
    assert not any(line.startswith("timm:") for line in lines)  # ~1,400 names: on request only


def test_unmatched_pattern_exits_1(capsys):
    code, lines = listed(capsys, "no_such_model*")
    assert code == 1
    assert any("no model matches" in line for line in lines)


def test_unknown_backend_is_a_user_error(capsys):
    assert main(["models", "keras:resnet*"]) == 2
    assert "unknown model backend 'keras'" in capsys.readouterr().err


@pytest.mark.parametrize("pattern", ["hf:*", "hf:google/*"])
def test_hf_pattern_explains_ids(capsys, pattern):
    code, lines = listed(capsys, pattern)
    assert code == 0
    assert any("AutoModelForImageClassification" in line for line in lines)
