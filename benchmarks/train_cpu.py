"""Train a recipe on the full shared Intel training set; print validation top-1, macro F1
and wall time.

    python benchmarks/train_cpu.py [--config configs/default.yaml] [--out DIR] [--set k=v ...]

The validation split is the stratified 10% carved from ../shared/data/intel/train; the
official test split is not used. The wall time includes decoding the images: the run gets a
fresh, empty decoded-image cache unless --cache-dir names one (then whether it was hit is
printed, and a hit means the wall time does not include decoding).
"""

from __future__ import annotations

import argparse
import atexit
import csv
import shutil
import tempfile
import time
from pathlib import Path

from scenes.config import load_config
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"bench-cpu-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--cache-dir", help="reuse this decoded-image cache (default: fresh)")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    use_offline_weights()
    if args.cache_dir:
        cache = Path(args.cache_dir)
    else:  # fresh, and removed at exit: a decoded copy of the training set is about 1 GB
        cache = Path(tempfile.mkdtemp("scenes-cache"))
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    before = set(cache.glob("*.npy")) if cache.is_dir() else set()
    overrides = {"data.dir": args.data, "out": args.out, "data.cache_dir": str(cache)}
    cfg = load_config(args.config, overrides, args.sets)
    started = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - started
    built_now = set(cache.glob("*.npy")) - before
    decoding = (
        "included (fresh cache)"
        if not args.cache_dir
        else "included (cache missed, built now)"
        if built_now
        else "NOT included (cache hit)"
    )
    best = result.best
    print(
        f"\nrecipe {args.config} {' '.join(args.sets)}: best epoch "
        f"{result.best_epoch}/{result.epochs_run}, seed {cfg.seed}\n"
        f"validation top-1 {best['val_acc']:.4f}  macro F1 {best['val_f1']:.4f}  "
        f"val loss {best['val_loss']:.4f}\n"
        f"wall time {wall / 60:.1f} min, decoding {decoding} "
        f"(training epochs: {sum_epoch_time(result.run_dir) / 60:.1f} min)\n"
        f"run directory {result.run_dir}"
    )


def sum_epoch_time(run_dir) -> float:
    with (run_dir / "metrics.csv").open() as fh:
        return sum(float(r["time_s"]) for r in csv.DictReader(fh))


if __name__ == "__main__":
    main()
