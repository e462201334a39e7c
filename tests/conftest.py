"""Shared fixtures: synthetic image folders, real subsets of ../shared, offline weights."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCENES_SHARED", REPO.parent / "shared"))
INTEL_TRAIN = SHARED / "data" / "intel" / "train"
INTEL_PRED = SHARED / "data" / "intel" / "pred"
MOBILENET_FILE = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]

needs_intel = pytest.mark.skipif(not INTEL_TRAIN.is_dir(), reason=f"no {INTEL_TRAIN}")
needs_weights = pytest.mark.skipif(not MOBILENET_FILE.is_file(), reason=f"no {MOBILENET_FILE}")


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Every test gets its own decoded-image cache; nothing is written to ~/.cache."""
    monkeypatch.setenv("SCENES_CACHE", str(tmp_path_factory.mktemp("scenes-cache")))


def answer_ctrl_c() -> None:
    """For a child process that a test interrupts: SIGINT back to its default. A shell that
    runs the suite in the background starts it with SIGINT ignored, which every child would
    inherit, and Python installs its KeyboardInterrupt handler only where SIGINT is not."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_image(path: Path, color: tuple[int, int, int], size=(40, 40), seed=0, mode="RGB") -> Path:
    """A noisy image around ``color``: classes are separable, images are not identical."""
    rng = np.random.default_rng(seed)
    base = np.array(color, dtype=np.int16).reshape(1, 1, 3)
    noise = rng.integers(-30, 31, size=(size[1], size[0], 3), dtype=np.int16)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


PALETTE = [
    (220, 40, 40),
    (40, 200, 40),
    (40, 40, 220),
    (220, 220, 40),
    (40, 220, 220),
    (200, 40, 200),
]


def make_folder(root: Path, classes: list[str], per_class: int, size=(40, 40), seed=0) -> Path:
    """``root/<class>/<i>.jpg`` with one colour per class."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            make_image(
                root / name / f"{i:03d}.jpg",
                PALETTE[c % len(PALETTE)],
                size,
                seed * 10_000 + c * 1000 + i,
            )
    return root


@pytest.fixture
def synthetic_folder(tmp_path) -> Path:
    """A bare layout: 3 classes x 12 JPEGs of 40x40."""
    return make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME holding the offline ImageNet MobileNetV2 file, as the README says."""
    if not MOBILENET_FILE.is_file():
        pytest.skip(f"no {MOBILENET_FILE}")
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(MOBILENET_FILE, home / "hub" / "checkpoints" / MOBILENET_FILE.name)
    return home


@pytest.fixture
def offline_weights(torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return torch_home


def real_subset(dest: Path, per_class: int, offset: int = 0) -> Path:
    """``dest/<class>/`` with symlinks to ``per_class`` real Intel training images per class."""
    if not INTEL_TRAIN.is_dir():
        pytest.skip(f"no {INTEL_TRAIN}")
    for name in CLASSES:
        files = sorted((INTEL_TRAIN / name).iterdir())[offset : offset + per_class]
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            (dest / name / f.name).symlink_to(f)
    return dest


def tiny_train_config(data: Path, out: Path, **overrides):
    """A config that trains a small, randomly initialised model in seconds on 2 cores."""
    from scenes.config import load_config

    base = {
        "data.dir": str(data),
        "data.image_size": 32,
        "data.batch_size": 8,
        "data.val_fraction": 0.25,
        "model.name": "mobilenet_v2",
        "model.pretrained": False,
        "train.epochs": 2,
        "train.lr": 3e-3,
        # Plain full training, whatever the default recipe is: tests that need the head phase,
        # smoothing or another patience ask for it.
        "train.mode": "full",
        "train.warmup_epochs": 1.0,
        "train.label_smoothing": 0.0,
        "train.patience": 5,
        "train.progress_bar": False,
        "out": str(out) if out is not None else None,
    }
    base.update(overrides)
    return load_config(overrides=base)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny training run (synthetic data, 3 classes, one colour each), shared by downstream
    tests. Its model answers differently per image and classifies the colours correctly."""
    from scenes.training import train

    root = tmp_path_factory.mktemp("trained")
    data = make_folder(root / "data", ["cat_a", "cat_b", "cat_c"], 12)
    old = os.environ.get("SCENES_CACHE")
    os.environ["SCENES_CACHE"] = str(root / "cache")
    try:
        # resnet18, not mobilenet_v2: at 32 px a freshly trained MobileNetV2's BatchNorm
        # statistics make every image give the same logits; this one learns the colours.
        # At a tenth of tiny_train_config's LR: at 3e-3 its BatchNorm running statistics lag
        # the weights, and whether the best epoch classifies the colours changed with the
        # CPU (and the seed); at 3e-4 its validation loss falls every epoch, to 100% top-1 at
        # every seed tried (0-7, 42). k = 3 neighbours for the acceptance of unknown photos:
        # with the default 10 and 9 training images a class, every photo's 10th neighbour is
        # of another class, and a real photo was accepted or not by chance.
        overrides = {
            "model.name": "resnet18",
            "train.epochs": 4,
            "train.lr": 3e-4,
            "serve.knn_k": 3,
        }
        result = train(tiny_train_config(data, root / "run", **overrides))
    finally:
        if old is None:
            os.environ.pop("SCENES_CACHE", None)
        else:
            os.environ["SCENES_CACHE"] = old
    # The tests below rely on it: say so here, not in a dozen puzzling failures downstream.
    assert result.best["val_acc"] == 1.0, f"the shared tiny model misses colours: {result.best}"
    return result.run_dir


@pytest.fixture
def fresh_run(trained_run, tmp_path) -> Path:
    """A copy of ``trained_run`` for a test that writes into a run (model.onnx, eval/, a
    report): the shared one stays as trained, whatever the order tests run in."""
    run = tmp_path / "run-copy"
    shutil.copytree(trained_run, run)
    return run


@pytest.fixture(scope="module")
def ray_instance():
    """One Ray instance for a module's jobs in this process (each would start and stop its
    own, seconds each on 2 cores): ``ray_session`` joins a running one and leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
