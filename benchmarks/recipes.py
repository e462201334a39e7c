"""The recipe table: for each recipe, validation top-1 and macro F1 over its seeds, training
time, serving latency and model size.

    python benchmarks/recipes.py --recipe default=../runs/a,../runs/b \\
                                 --recipe lite0=../runs/c,../runs/d [--rounds 5] [--calls 30]

Each RUN is a finished `scenes train` run (e.g. of train_cpu.py); the recipes must share the
validation split (data.split_seed), which is checked. Top-1 and macro F1 are those of each
run's best epoch (the one its bundle holds), as mean and half the range over the runs.
Training time is the sum of the epochs' times in metrics.csv (decoding, which train_cpu.py's
wall time includes, is not in it). Latency is `Predictor.predict` p50 of one real photo of
../shared/data/intel/pred (decoding included), the recipes' first bundles alternated in
--rounds rounds (median over rounds, and each recipe's ratio to the first recipe's per round).
Size is the bundle's weights file.
"""

from __future__ import annotations

import argparse
import statistics

from scenes.evaluation.compare import load_run
from scenes.rundir import RunDir

from _common import INTEL, alternated_p50


def spread(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    mean = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f} (one seed)"
    half = (max(values) - min(values)) / 2 * scale
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe", action="append", required=True, metavar="NAME=RUN[,RUN...]", default=[]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    recipes = {}
    for item in args.recipe:
        name, _, runs = item.partition("=")
        recipes[name] = [load_run(r) for r in runs.split(",") if r]
    splits = {RunDir(r.run.path).split_csv.read_bytes() for rs in recipes.values() for r in rs}
    if len(splits) > 1:
        raise SystemExit("the runs do not share one validation split: their numbers differ in kind")
    photos = sorted((INTEL / "pred").glob("*.jpg"))
    bundles = {name: runs[0].run.bundle for name, runs in recipes.items()}
    latency = alternated_p50(bundles, photos, args.rounds, args.calls)
    first = latency[next(iter(latency))]
    print(
        "| recipe | seeds | val top-1 % | val macro F1 % | training (epochs) | p50 ms | "
        "p50 / first recipe | bundle MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in recipes.items():
        minutes = [sum(r.epochs["time_s"]) / 60 for r in runs]
        ratios = [a / b for a, b in zip(latency[name], first)]
        size = (runs[0].run.bundle / "model.safetensors").stat().st_size / 2**20
        seeds = ", ".join(str(int(r.config.get("seed", -1))) for r in runs)
        print(
            f"| {name} | {seeds} | {spread([r.best['val_acc'] for r in runs])} | "
            f"{spread([r.best['val_f1'] for r in runs])} | "
            f"{statistics.mean(minutes):.0f} min | {statistics.median(latency[name]):.1f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{size:.1f} |"
        )


if __name__ == "__main__":
    main()
