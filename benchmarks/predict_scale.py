"""The hidden cost of the Ray engine on one machine: `scenes predict` local against
`--engine ray`, on the Intel training images; and what decoding the next batch ahead gains
the local engine.

    python benchmarks/predict_scale.py --run RUN [--images 14034] [--rounds 5] [--workers 2]

Three sides predict the same files into a fresh output, in an order rotated each round:
"local" (`scenes predict`'s loop and CSV writer), "local, in turn" (the same loop with each
batch decoded only once the previous one is answered, as before the decoding thread) and "ray"
(the engine's actors and Parquet parts). Ray's rate counts from its first row to its last
("once started"); its startup (the actors starting and loading the bundle, until the first
row) is reported on its own, as is `ray.init`. Ratios are per round: median and range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from scenes.data.files import list_files
from scenes.serve import predictor as predictor_module
from scenes.serve.predict import write_csv
from scenes.serve.prediction_files import PredictionSink
from scenes.serve.predictor import Predictor

from _common import INTEL


def decoded_in_turn(load_images, sources, batch_size):
    """The baseline: each chunk decoded when its turn comes, none ahead."""
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        yield (chunk, *load_images(chunk))


def local_rate(run: str, files: list[Path], out: Path, batch: int, ahead: bool) -> float:
    predictor = Predictor.load(run, device="cpu")
    real = predictor_module.decoded_batches
    if not ahead:
        predictor_module.decoded_batches = decoded_in_turn
    try:
        started = time.perf_counter()
        rows = predictor.iter_predictions(files, 3, batch)
        count = write_csv(rows, out, predictor.meta, 3, predictor.reference is not None)
        return count / (time.perf_counter() - started)
    finally:
        predictor_module.decoded_batches = real


def ray_rate(ray, run: str, files: list[Path], out: Path, batch: int, workers: int):
    """(rows/s from the first row to the last, seconds until the first row), through the
    engine's own actor and pool (``ray_jobs.map_paths``) into its Parquet sink."""
    from scenes.models.bundle import answers_digest, read_meta, resolve_bundle_dir
    from scenes.serve.csv_rows import csv_header
    from scenes.serve.ray_jobs import RayEngine, map_paths
    from scenes.serve.ray_predict import BatchPredictor

    bundle = resolve_bundle_dir(run)
    meta = read_meta(bundle)
    columns = [*csv_header(meta, 3, meta.acceptance is not None), "digest"]
    arguments = {
        "run": str(bundle),
        "backend": "torch",
        "device": "cpu",
        "accept_all": False,
        "top_k": 3,
        "tta": False,
        "done": {},
    }
    engine = RayEngine(workers=workers)
    with PredictionSink(out, columns, answers_digest(bundle)) as sink:
        started = time.perf_counter()
        first, first_rows = None, 0
        for block in map_paths(ray, files, BatchPredictor, arguments, batch, engine):
            if first is None:
                first, first_rows = time.perf_counter(), len(block["row"])
            sink.write([json.loads(text) for text in block["row"]])
        end = time.perf_counter()
        sink.finish()
    # The first block's rows are not counted: they arrived at `first`.
    return (sink.written - first_rows) / (end - first), first - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--images", type=int, default=14034)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import ray

    files = list_files(INTEL / "train")[: args.images]
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    init_s = time.perf_counter() - started
    sides = ["local", "local, in turn", "ray"]
    rates: dict[str, list[float]] = {side: [] for side in sides}
    startup = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in sides[r % 3 :] + sides[: r % 3]:
                out = Path(tmp) / f"{sides.index(side)}-{r}"
                if side == "ray":
                    rate, first = ray_rate(
                        ray,
                        args.run,
                        files,
                        out.with_suffix(".parquet"),
                        args.batch_size,
                        args.workers,
                    )
                    startup.append(first)
                else:
                    rate = local_rate(
                        args.run, files, out.with_suffix(".csv"), args.batch_size, side == "local"
                    )
                rates[side].append(rate)
                print(f"round {r + 1} {side}: {rate:.1f} images/s", flush=True)
    ray.shutdown()

    def ratio(over: str, under: str) -> str:
        each = [a / b for a, b in zip(rates[over], rates[under])]
        return f"**{statistics.median(each):.3f}** ({min(each):.3f}-{max(each):.3f})"

    print(
        f"\n{len(files)} images, {args.workers} Ray workers, batch {args.batch_size}, "
        f"{args.rounds} rounds\n"
        "| engine | images/s (median) | ratio per round (median, range) |\n|---|---|---|\n"
        f"| local, in turn | {statistics.median(rates['local, in turn']):.1f} | |\n"
        f"| local (decoding ahead) | {statistics.median(rates['local']):.1f} | "
        f"{ratio('local', 'local, in turn')} of in turn |\n"
        f"| ray, once started | {statistics.median(rates['ray']):.1f} | "
        f"{ratio('ray', 'local')} of local |\n"
        f"startup: ray.init {init_s:.1f} s; first row after {statistics.median(startup):.1f} s "
        "(median; actors starting and loading the bundle)"
    )


if __name__ == "__main__":
    main()
