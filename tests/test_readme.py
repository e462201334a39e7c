"""The README's quick tour runs as written: every line of it, in a fresh folder holding a small
real subset laid out as `scenes data download` lays out the dataset (the download itself needs
the network, so its result is put there instead), with the real pretrained weights."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import CLASSES, INTEL_PRED, INTEL_TRAIN, SHARED, needs_intel, needs_weights

ROOT = Path(__file__).resolve().parents[1]


def tour_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick tour\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def lay_out_download(root: Path, per_class: int = 10, test_per_class: int = 3) -> None:
    """data/intel/{train,test,pred} as `scenes data download` writes it, from ../shared."""
    for name in CLASSES:
        files = sorted((INTEL_TRAIN / name).iterdir())
        for split, chosen in (("train", files[:per_class]), ("test", files[-test_per_class:])):
            folder = root / "data" / "intel" / split / name
            folder.mkdir(parents=True)
            for f in chosen:
                (folder / f.name).symlink_to(f)
    pred = root / "data" / "intel" / "pred"
    pred.mkdir(parents=True)
    for f in sorted(INTEL_PRED.iterdir())[:4]:
        (pred / f.name).symlink_to(f)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@needs_intel
@needs_weights
def test_the_quick_tour_runs_as_written(tmp_path, offline_weights):
    lines = tour_lines()
    assert lines[0] == "scenes data download" and lines[-1].startswith("scenes app")
    lay_out_download(tmp_path)
    tour_photo = re.search(r"data/intel/pred/(\S+)", " ".join(lines)).group(1)
    if not (tmp_path / "data/intel/pred" / tour_photo).exists():
        (tmp_path / "data/intel/pred" / tour_photo).symlink_to(INTEL_PRED / tour_photo)
    # The default data folder, as a new user has it; the weights from the offline folder.
    env = {k: v for k, v in os.environ.items() if k != "SCENES_DATA"}
    env["SCENES_WEIGHTS_DIR"] = str(SHARED / "weights")
    scenes = [sys.executable, "-m", "scenes"]
    for line in lines[1:-1]:
        argv = shlex.split(line)
        assert argv[0] == "scenes"
        done = subprocess.run(
            [*scenes, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
    run = tmp_path / "runs" / "first"
    for made in ("report.md", "model/model.onnx", f"explain/{Path(tour_photo).stem}.png"):
        assert (run / made).is_file(), made
    predicted = (tmp_path / "preds.csv").read_text().count("\n") - 1  # less the header
    assert predicted == len(list((tmp_path / "data/intel/pred").iterdir()))
    assert {p.name for p in (run / "eval").iterdir()} == {"val", "test"}

    # The last line serves until stopped: start it, see the page, stop it.
    argv = shlex.split(lines[-1])[1:]
    port = 7860
    if not port_is_free(port):  # another app on this machine: the tour's command, elsewhere
        argv += ["--port", str(port := 7861)]
    server = subprocess.Popen([*scenes, *argv], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"scenes app ended with {server.returncode}")
                time.sleep(0.5)
        else:
            pytest.fail("scenes app did not answer")
    finally:
        server.terminate()
        server.wait(timeout=30)
