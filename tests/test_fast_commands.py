"""Commands that neither train nor infer start fast: they import no Lightning, matplotlib or
(for `scenes models`, once its listing is cached) torch."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from conftest import make_folder

HEAVY = ("lightning", "matplotlib", "torch", "torchvision", "timm", "sklearn", "gradio")


def heavy_modules_after(argv: list[str]) -> tuple[int, list[str]]:
    """Run ``scenes ARGV`` in a fresh interpreter; its exit code and the heavy modules it loaded."""
    code = (
        "import json, sys\n"
        "from scenes.cli import main\n"
        f"rc = main({argv!r})\n"
        f"print(json.dumps([rc, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, loaded


@pytest.mark.parametrize("command", ["stats", "check"])
def test_data_commands_import_no_heavy_stack(tmp_path, command):
    folder = make_folder(tmp_path / "data", ["cat_a", "cat_b"], 3)
    rc, loaded = heavy_modules_after(["data", command, str(folder)])
    assert rc == 0
    assert loaded == []


def test_models_listing_is_cached_and_then_imports_no_torch():
    # The first call may import torchvision and timm to list their names ...
    assert heavy_modules_after(["models", "resnet1*"])[0] == 0
    # ... later calls read the cached listing (this test's $SCENES_CACHE).
    rc, loaded = heavy_modules_after(["models", "resnet1*"])
    assert rc == 0 and loaded == []
    rc, loaded = heavy_modules_after(["models"])
    assert rc == 0 and loaded == []


def test_models_package_names_resolve_lazily():
    import scenes.models

    assert sorted(scenes.models.__all__) == sorted(scenes.models._EXPORTS)
    for name in scenes.models.__all__:
        home = importlib.import_module(scenes.models._EXPORTS[name], "scenes.models")
        assert getattr(scenes.models, name) is getattr(home, name)  # the object its module defines
    with pytest.raises(AttributeError):
        scenes.models.not_a_thing  # noqa: B018
