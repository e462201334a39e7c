"""The documentation: generated pages equal what the code says, the default recipe file equals
the config's defaults, and the README fits on a page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scenes.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_generated_pages_and_the_default_recipe_are_up_to_date():
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_default_recipe_file_is_the_config_defaults():
    assert load_config(ROOT / "configs" / "default.yaml") == Config()


def test_the_readme_fits_on_a_page_and_links_to_pages_that_exist():
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
