"""Weight files from elsewhere are read as data by scenes itself, whatever a library's default:
a weights folder someone filled, a ``--weights`` file, torchvision's download."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenes.errors import UnsafeFileError, WeightsUnavailableError
from scenes.models.registry import build_model

from test_untrusted_files import plant

# the file name of timm's resnet10t.c3_in1k weights (its pretrained cfg's URL)
TIMM_FILE = "resnet10t_176_c3-f3215ab1.pth"


def test_a_pickle_in_the_weights_folder_is_refused_for_timm(tmp_path):
    """timm's own file loader (before timm 1.0.26) unpickles in full, on any torch."""
    folder = tmp_path / "weights"
    folder.mkdir()
    plant(folder / TIMM_FILE, tmp_path / "ran")
    with pytest.raises(UnsafeFileError, match=TIMM_FILE):
        build_model("timm:resnet10t", 3, pretrained=True, weights_dir=str(folder))
    assert not (tmp_path / "ran").exists()


def test_a_pickle_given_as_weights_is_refused_naming_it(tmp_path):
    plant(tmp_path / "start.pth", tmp_path / "ran")
    with pytest.raises(UnsafeFileError, match="start.pth"):
        build_model("resnet18", 3, pretrained=False, weights_file=tmp_path / "start.pth")
    assert not (tmp_path / "ran").exists()


def test_torchvision_downloads_are_read_as_data(tmp_path, monkeypatch):
    """torch.hub.load_state_dict_from_url defaults to weights_only=False (a full pickle)."""
    import torchvision.models._api as tv_api

    asked: dict = {}

    def offline(url, *args, **kwargs):
        asked.update(kwargs)
        raise OSError("offline")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # nothing cached
    monkeypatch.delenv("SCENES_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsUnavailableError):
        build_model("resnet18", 3, pretrained=True, weights="IMAGENET1K_V1", weights_dir=None)
    assert asked.get("weights_only") is True


def test_the_timm_file_name_is_the_one_timm_would_load():
    """The tests above plant the file timm looks for, so they test the real path."""
    from timm.models import get_pretrained_cfg

    assert Path(get_pretrained_cfg("resnet10t.c3_in1k").url).name == TIMM_FILE
