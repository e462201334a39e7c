"""Helpers shared by the benchmark scripts: where ../shared is, and offline weights."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCENES_SHARED", REPO.parent / "shared"))
INTEL = SHARED / "data" / "intel"
MOBILENET_FILE = SHARED / "weights" / "mobilenet_v2-b0353104.pth"


def use_offline_weights() -> Path:
    """Point TORCH_HOME at a folder holding the shared ImageNet MobileNetV2 file (unless the
    user's TORCH_HOME already has it), exactly as the README's offline section says, and
    SCENES_WEIGHTS_DIR at the shared weights (unless set) so the timm EfficientNet-Lite
    recipes find theirs offline too."""
    os.environ.setdefault("SCENES_WEIGHTS_DIR", str(MOBILENET_FILE.parent))
    current = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    if (current / "hub" / "checkpoints" / MOBILENET_FILE.name).is_file():
        return current
    if not MOBILENET_FILE.is_file():
        raise SystemExit(f"missing {MOBILENET_FILE}: the benchmark needs real ImageNet weights")
    home = Path(tempfile.gettempdir()) / "scenes-bench-torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    target = home / "hub" / "checkpoints" / MOBILENET_FILE.name
    if not target.is_file():
        shutil.copy(MOBILENET_FILE, target)
    os.environ["TORCH_HOME"] = str(home)
    return home


def alternated_p50(bundles: dict, photos: list[Path], rounds: int, calls: int) -> dict:
    """{name: [p50 ms of ``Predictor.predict`` (decoding included) in each round]}: the
    bundles take turns, their order rotated every round, one warm-up call each first."""
    import statistics
    import time

    from scenes.serve.predictor import Predictor

    models = {n: Predictor.load(b, device="cpu", accept_all=True) for n, b in bundles.items()}
    for model in models.values():
        model.predict(photos[0])
    medians = {n: [] for n in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times = []
            for photo in photos[:calls]:
                start = time.perf_counter()
                models[name].predict(photo)
                times.append((time.perf_counter() - start) * 1000)
            medians[name].append(statistics.median(times))
    return medians


def median_range(values: list[float]) -> str:
    """``median (min-max)`` of alternated rounds, as the README reports ratios."""
    import statistics

    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"
