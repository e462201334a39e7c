"""Train the fast CPU recipe on the full shared Intel training set; print validation top-1,
macro F1 and wall time.

    python benchmarks/train_cpu.py [--config configs/mobilenet_v2_cpu.yaml] [--out DIR]

The validation split is the stratified 10% carved from ../shared/data/intel/train; the
official test split is not used. Wall time includes decoding the images (first run: no cache).
"""

from __future__ import annotations

import argparse
import time

from scenes.config import load_config
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "mobilenet_v2_cpu.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"bench-cpu-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    use_offline_weights()
    cfg = load_config(args.config, {"data.dir": args.data, "out": args.out}, args.sets)
    started = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - started
    best = result.best
    print(
        f"\nrecipe {args.config}: best epoch {result.best_epoch}/{result.epochs_run}\n"
        f"validation top-1 {best['val_acc']:.4f}  macro F1 {best['val_f1']:.4f}  "
        f"val loss {best['val_loss']:.4f}\n"
        f"wall time {wall / 60:.1f} min (training epochs: {sum_epoch_time(result.run_dir) / 60:.1f} min)\n"
        f"run directory {result.run_dir}"
    )


def sum_epoch_time(run_dir) -> float:
    import csv

    with (run_dir / "metrics.csv").open() as fh:
        return sum(float(r["time_s"]) for r in csv.DictReader(fh))


if __name__ == "__main__":
    main()
