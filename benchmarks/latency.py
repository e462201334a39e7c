"""Single-image latency of Predictor (PyTorch vs ONNX Runtime) and `scenes predict` throughput.

    python benchmarks/latency.py [--runs 200] [--image-size 150]

Latency: one real photo at a time through Predictor.predict (decode + preprocess + forward),
p50/p95 over --runs calls after warm-up, for MobileNetV2 and ResNet-18 bundles. Weights are
random: latency does not depend on their values. Throughput: Predictor.predict_many (what
`scenes predict` runs) over the 500 images of ../shared/data/intel/pred, in img/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from scenes.export import export_onnx
from scenes.models import build_model, save_bundle
from scenes.models.bundle import BundleMeta
from scenes.predict import Predictor, collect_images

from _common import INTEL

CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]


def make_bundle(arch: str, size: int, root: Path) -> Path:
    built = build_model(arch, len(CLASSES), pretrained=False)
    meta = BundleMeta("torchvision", arch, CLASSES, size, built.mean, built.std, head=built.head)
    save_bundle(built.module.eval(), meta, root / arch / "model")
    export_onnx(root / arch)
    return root / arch


def latencies_ms(predictor: Predictor, photos: list[Path], runs: int) -> list[float]:
    for photo in photos[:10]:
        predictor.predict(photo)
    out = []
    for i in range(runs):
        start = time.perf_counter()
        predictor.predict(photos[i % len(photos)])
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=150)
    args = parser.parse_args()
    photos = collect_images([INTEL / "pred"])
    root = Path(tempfile.mkdtemp(prefix="scenes-latency-"))
    print(f"{'model':<14}{'backend':<9}{'p50 ms':>8}{'p95 ms':>8}{'predict img/s':>15}")
    for arch in ("mobilenet_v2", "resnet18"):
        bundle = make_bundle(arch, args.image_size, root)
        for backend in ("torch", "onnx"):
            predictor = Predictor.load(bundle, backend=backend)
            ms = sorted(latencies_ms(predictor, photos, args.runs))
            p50, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
            start = time.perf_counter()
            rows = predictor.predict_many(photos, top_k=3, batch_size=32)
            rate = len(rows) / (time.perf_counter() - start)
            print(f"{arch:<14}{backend:<9}{p50:>8.1f}{p95:>8.1f}{rate:>15.1f}")


if __name__ == "__main__":
    main()
