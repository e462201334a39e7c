"""How well a trained bundle tells photos of none of its classes from photos of its classes.

    python benchmarks/unknown.py --run RUN            # a finished run of the default recipe
    python benchmarks/unknown.py --out DIR [--set key=value ...]   # trains it first (~13 min)

In distribution (ID): (a) the run's Intel validation photos (the acceptance threshold was
chosen on them, so its accepted share there is 95% by construction) and (b) the 500 unlabelled
photos of ``../shared/data/intel/pred`` (scene photos no step of training or fitting saw: the
honest accepted share).

Out of distribution (OOD): the photos that ship inside installed Python packages: scikit-image's
``skimage.data`` (astronaut, the cat Chelsea, coffee, coins, a rocket, a motorcycle, a retina,
textures such as brick, grass and gravel ...), Gradio's media assets (cheetahs, a lion, Groot),
matplotlib's Grace Hopper, scikit-learn's flower; and, as a second group, scikit-image's 200 LFW
faces (25x25 grey, upscaled). Two files are left out because they are scenes of a known class:
scikit-learn's china.jpg (a temple: buildings) and Gradio's tower.jpg (a tower: buildings).

Scores compared on the same photos (AUROC, OOD as positives; higher is better):
- k-NN distance (what the bundle stores: Sun et al. 2022, normalised penultimate features, the
  k-th nearest of a sample of training images);
- maximum softmax probability (Hendrycks & Gimpel 2017), after the bundle's temperature;
- energy (Liu et al. 2020): -logsumexp(logits).
Rejected shares are at the bundle's stored threshold (k-NN only: the others have none stored).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from scenes.config import load_config
from scenes.models.acceptance import knn_distance
from scenes.models.probabilities import softmax
from scenes.rundir import RunDir
from scenes.serve.predictor import Predictor
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights

# Files of a known class (buildings): not "none of these".
SCENES_AMONG_THEM = {"china.jpg", "tower.jpg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# drawings, and the right image of a stereo pair (the left one is in)
SKIMAGE_NOT_PHOTOS = {
    "chessboard_GRAY.png",
    "chessboard_RGB.png",
    "phantom.png",
    "horse.png",
    "motorcycle_right.png",
}


def package_folder(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def ood_photos() -> dict[str, list]:
    """{"photos": [files], "faces": [PIL images]} from the installed packages."""
    folders = [
        package_folder("skimage", "data"),
        package_folder("gradio", "media_assets", "images"),
        package_folder("gradio", "test_data"),
        package_folder("matplotlib", "mpl-data", "sample_data"),
        package_folder("sklearn", "datasets", "images"),
    ]
    if folders[0] is None:
        raise SystemExit("pip install scikit-image: its data module holds most of the OOD photos")
    photos = []
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or f.name in SCENES_AMONG_THEM:
                continue
            if f.name in SKIMAGE_NOT_PHOTOS or "logo" in f.name or f.stat().st_size < 15_000:
                continue  # drawings, logos and icons: not photos
            if "copy" in f.name:  # gradio's test data repeats a media asset
                continue
            photos.append(f)
    faces = np.load(folders[0] / "lfw_subset.npy")
    face_images = [Image.fromarray((np.clip(f, 0, 1) * 255).astype(np.uint8)) for f in faces]
    return {"photos": photos, "faces": face_images}


def scores(model: Predictor, sources: list) -> dict[str, np.ndarray]:
    """k-NN distance, 1 - max softmax and energy (each: larger = stranger) of ``sources``."""
    knn, msp, energy = [], [], []
    for start in range(0, len(sources), 64):
        pixels = np.stack([model.load_image(s) for s in sources[start : start + 64]])
        logits, features = model.forward(pixels)
        knn.append(knn_distance(features, model.reference, model.meta.acceptance.k))
        probs = softmax(logits / np.float32(model.meta.temperature))
        msp.append(1.0 - probs.max(axis=1))
        top = logits.max(axis=1, keepdims=True)
        energy.append(-(top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))))
    return {
        "k-NN distance (stored)": np.concatenate(knn),
        "max softmax probability": np.concatenate(msp),
        "energy": np.concatenate(energy),
    }


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(labels, np.r_[inside, outside]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run (default: train one to --out)")
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"unknown-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    use_offline_weights()
    run = args.run
    if run is None:
        cfg = load_config(args.config, {"data.dir": args.data, "out": args.out}, args.sets)
        started = time.perf_counter()
        run = train(cfg).run_dir
        print(f"trained in {(time.perf_counter() - started) / 60:.1f} min")
    model = Predictor.load(run, device="cpu")
    if model.meta.acceptance is None:
        raise SystemExit(f"{run}: the bundle has no acceptance (serve.accept_rate was null)")
    threshold = model.meta.acceptance.threshold

    val = [row.path for row in RunDir(run).read_split() if row.split == "val"]
    pred_dir = Path(args.data) / "pred"
    unseen = sorted(p for p in pred_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    ood = ood_photos()
    groups = {
        f"Intel validation ({len(val)})": val,
        f"Intel pred, unseen ({len(unseen)})": unseen,
        f"OOD photos ({len(ood['photos'])})": ood["photos"],
        f"OOD faces ({len(ood['faces'])})": ood["faces"],
    }
    found = {name: scores(model, sources) for name, sources in groups.items()}
    id_names, ood_names = list(groups)[:2], list(groups)[2:]
    both_ood = {m: np.r_[tuple(found[n][m] for n in ood_names)] for m in found[ood_names[0]]}

    print(f"\nbundle: {run}; k-NN k={model.meta.acceptance.k}, threshold {threshold:.4f}")
    print("\naccepted at the stored threshold (k-NN distance <= threshold):\n")
    for name in groups:
        share = float(np.mean(found[name]["k-NN distance (stored)"] <= threshold))
        print(f"- {name}: {share:.1%} accepted")
    print("\nAUROC (OOD as positives; 0.5 = chance):\n")
    header = ["score"] + [f"{i} vs {o}" for i in id_names for o in [*ood_names, "all OOD"]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for method in found[id_names[0]]:
        cells = [method]
        for i in id_names:
            for o in ood_names:
                cells.append(f"{auroc(found[i][method], found[o][method]):.4f}")
            cells.append(f"{auroc(found[i][method], both_ood[method]):.4f}")
        print("| " + " | ".join(cells) + " |")
    print("\nOOD photos, each (k-NN distance; rejected when > threshold):")
    for photo, score in zip(ood["photos"], found[ood_names[0]]["k-NN distance (stored)"]):
        verdict = "rejected" if score > threshold else "ACCEPTED"
        print(f"  {photo.parent.parent.name}/{photo.name}: {score:.4f} {verdict}")


if __name__ == "__main__":
    main()
