"""The hidden cost of the Ray engine on one machine: `scenes predict` local against
`--engine ray`, on the Intel training images.

    python benchmarks/predict_scale.py --run RUN [--images 14034] [--rounds 3] [--workers 2]

Both sides predict the same files into a fresh output (local: the CSV writer; Ray: the Parquet
parts), alternated --rounds times, the order swapped each round. Ray's rate counts from its
first row to its last ("once started"); its startup (the actors starting and loading the
bundle, until the first row) is reported on its own, as is `ray.init`. The ratio is Ray's rate
over the local rate of the same round: median and range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from scenes.data.files import list_files
from scenes.serve.predict import write_csv
from scenes.serve.prediction_files import PredictionSink, bundle_digest
from scenes.serve.predictor import Predictor

from _common import INTEL


def local_rate(run: str, files: list[Path], out: Path, batch: int) -> float:
    predictor = Predictor.load(run, device="cpu")
    started = time.perf_counter()
    rows = predictor.iter_predictions(files, 3, batch)
    count = write_csv(rows, out, predictor.meta, 3, predictor.reference is not None)
    return count / (time.perf_counter() - started)


def ray_rate(ray, run: str, files: list[Path], out: Path, batch: int, workers: int):
    """(rows/s from the first row to the last, seconds until the first row), through the
    engine's own actor and pool (``ray_jobs.map_paths``) into its Parquet sink."""
    from scenes.models.bundle import read_meta, resolve_bundle_dir
    from scenes.serve.csv_rows import csv_header
    from scenes.serve.ray_engine import BatchPredictor
    from scenes.serve.ray_jobs import RayEngine, map_paths

    bundle = resolve_bundle_dir(run)
    meta = read_meta(bundle)
    columns = [*csv_header(meta, 3, meta.acceptance is not None), "digest"]
    sink = PredictionSink(out, columns, bundle_digest(bundle))
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import ray

    files = list_files(INTEL / "train")[: args.images]
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    init_s = time.perf_counter() - started
    local, remote, startup, ratios = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            sides = ["local", "ray"] if r % 2 == 0 else ["ray", "local"]
            got = {}
            for side in sides:
                out = Path(tmp) / f"{side}-{r}"
                if side == "local":
                    got[side] = local_rate(
                        args.run, files, out.with_suffix(".csv"), args.batch_size
                    )
                else:
                    rate, first = ray_rate(
                        ray,
                        args.run,
                        files,
                        out.with_suffix(".parquet"),
                        args.batch_size,
                        args.workers,
                    )
                    got[side] = rate
                    startup.append(first)
                print(f"round {r + 1} {side}: {got[side]:.1f} images/s", flush=True)
            local.append(got["local"])
            remote.append(got["ray"])
            ratios.append(got["ray"] / got["local"])
    ray.shutdown()
    print(
        f"\n{len(files)} images, {args.workers} Ray workers, batch {args.batch_size}\n"
        f"| engine | images/s (median) | ray / local (median, range) |\n|---|---|---|\n"
        f"| local | {statistics.median(local):.1f} | 1 |\n"
        f"| ray, once started | {statistics.median(remote):.1f} | "
        f"**{statistics.median(ratios):.3f}** ({min(ratios):.3f}-{max(ratios):.3f}) |\n"
        f"startup: ray.init {init_s:.1f} s; first row after {statistics.median(startup):.1f} s "
        "(median; actors starting and loading the bundle)"
    )


if __name__ == "__main__":
    main()
