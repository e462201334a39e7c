"""Single-image latency of Predictor (PyTorch vs ONNX Runtime), `scenes predict` throughput,
the cost of a heatmap (`Predictor.explain`), and the app's per-request latency with and
without the heatmap.

    python benchmarks/latency.py [--runs 200] [--image-size 150] [--rounds 10]
                                 [--parts predict explain app]

predict: one real photo at a time through Predictor.predict (decode + preprocess + forward),
p50/p95 over --runs calls after warm-up, for MobileNetV2 and ResNet-18 bundles; then
Predictor.predict_many (what `scenes predict` runs) over the 500 images of
../shared/data/intel/pred, in img/s.

explain: MobileNetV2, Predictor.explain (decode, top-3, Grad-CAM heatmap) against
Predictor.predict on the same photos, in --rounds alternating blocks; p50/p95 over all calls
of each, and the explain/predict ratio of the block medians (median and range over blocks).

app: two live Gradio apps on loopback (heatmap on / off, same bundle), one gradio_client each,
one request at a time (per-request latency: upload, queue, inference, heatmap PNG, download),
alternating blocks the same way.

Weights are random: latency does not depend on their values.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scenes.models import build_model, save_bundle
from scenes.models.meta import BundleMeta
from scenes.serve.formats import export
from scenes.serve.predict import collect_images
from scenes.serve.predictor import Predictor

from _common import INTEL

CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]


def make_bundle(arch: str, size: int, root: Path) -> Path:
    built = build_model(arch, len(CLASSES), pretrained=False)
    meta = BundleMeta.of(built, CLASSES, size)
    save_bundle(built.module.eval(), meta, root / arch / "model")
    export(root / arch, "onnx")
    return root / arch


def percentiles(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def timed_ms(call: Callable[[Path], object], photos: list[Path], start: int, n: int) -> list[float]:
    out = []
    for i in range(start, start + n):
        begin = time.perf_counter()
        call(photos[i % len(photos)])
        out.append((time.perf_counter() - begin) * 1000)
    return out


def alternate(
    sides: dict[str, Callable[[Path], object]], photos: list[Path], runs: int, rounds: int
) -> tuple[dict[str, list[float]], list[float]]:
    """Each side in turn, ``rounds`` blocks of runs/rounds calls on the same photos; returns
    all latencies per side and, per block, the ratio of the second side's median to the
    first's."""
    names = list(sides)
    per_block = max(1, runs // rounds)
    times: dict[str, list[float]] = {n: [] for n in names}
    ratios = []
    for r in range(rounds):
        medians = {}
        for name in names:
            block = timed_ms(sides[name], photos, r * per_block, per_block)
            times[name] += block
            medians[name] = statistics.median(block)
        ratios.append(medians[names[1]] / medians[names[0]])
    return times, ratios


def report_pair(label: str, times: dict[str, list[float]], ratios: list[float]) -> None:
    for name, ms in times.items():
        p50, p95 = percentiles(ms)
        print(f"{label:<22}{name:<20}{p50:>8.1f}{p95:>8.1f}{len(ms):>7}")
    a, b = times
    print(
        f"{label:<22}ratio {b}/{a}: median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} alternating blocks)"
    )


def bench_predict(photos: list[Path], root: Path, args) -> None:
    print(f"{'model':<14}{'backend':<9}{'p50 ms':>8}{'p95 ms':>8}{'predict img/s':>15}")
    for arch in ("mobilenet_v2", "resnet18"):
        bundle = make_bundle(arch, args.image_size, root)
        for backend in ("torch", "onnx"):
            predictor = Predictor.load(bundle, backend=backend)
            timed_ms(predictor.predict, photos, 0, 10)  # warm-up
            p50, p95 = percentiles(timed_ms(predictor.predict, photos, 0, args.runs))
            start = time.perf_counter()
            rows = predictor.predict_many(photos, top_k=3, batch_size=32)
            rate = len(rows) / (time.perf_counter() - start)
            print(f"{arch:<14}{backend:<9}{p50:>8.1f}{p95:>8.1f}{rate:>15.1f}")


def bench_explain(photos: list[Path], bundle: Path, args) -> None:
    predictor = Predictor.load(bundle)
    sides = {"predict": predictor.predict, "explain": predictor.explain}
    for call in sides.values():
        timed_ms(call, photos, 0, 10)  # warm-up (the explainer picks its layer once)
    times, ratios = alternate(sides, photos, args.runs, args.rounds)
    report_pair(f"mobilenet_v2@{args.image_size}", times, ratios)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_app(photos: list[Path], bundle: Path, args) -> None:
    from gradio_client import Client, handle_file

    from scenes.serve.app import build_app

    predictor = Predictor.load(bundle)
    demos, sides = [], {}
    for name, explain in (("labels only", False), ("labels + heatmap", True)):
        demo = build_app(predictor, explain=explain)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)

        def request(photo: Path, client=client, explain=explain) -> None:
            result = client.predict(handle_file(str(photo)), api_name="/predict")
            labels = result[0]  # (labels, heatmap, answer) or (labels, answer)
            if len(labels["confidences"]) != 3:
                raise RuntimeError(f"bad answer for {photo}: {result}")

        sides[name] = request
    try:
        for call in sides.values():
            timed_ms(call, photos, 0, 10)  # warm-up
        times, ratios = alternate(sides, photos, args.runs, args.rounds)
    finally:
        for demo in demos:
            demo.close()
    report_pair(f"app mobilenet_v2@{args.image_size}", times, ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks (explain, app)")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["predict", "explain", "app"],
        default=["predict", "explain", "app"],
    )
    args = parser.parse_args()
    photos = collect_images([INTEL / "pred"])
    # removed at exit: run folders are hundreds of MB each
    root = Path(tempfile.mkdtemp(prefix="scenes-latency-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    if "predict" in args.parts:
        bench_predict(photos, root, args)
    if {"explain", "app"} & set(args.parts):
        bundle = root / "mobilenet_v2"
        if not bundle.is_dir():
            bundle = make_bundle("mobilenet_v2", args.image_size, root)
        print(f"\n{'':<22}{'':<20}{'p50 ms':>8}{'p95 ms':>8}{'calls':>7}")
        if "explain" in args.parts:
            bench_explain(photos, bundle, args)
        if "app" in args.parts:
            bench_app(photos, bundle, args)


if __name__ == "__main__":
    main()
