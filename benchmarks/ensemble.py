"""What two and three members add: ensembles of the default recipe trained with different seeds.

    python benchmarks/ensemble.py [--runs RUN ...] [--seeds 42 7 1] [--out DIR] [--rounds 5]

Trains the default recipe once per seed on ../shared/data/intel/train (a run that --runs
names, or that already holds a bundle in OUT/seed-<n>, is reused); every run shares the
validation split (data.split_seed is fixed, whatever the seed). Then measures on that split,
as `scenes evaluate --split val` does: each member alone, every ensemble of two and the
ensemble of three (`scenes ensemble`). Latency is `Predictor.predict` p50 (decoding
included), a member and the ensembles alternated in --rounds rounds; each ensemble's p50 is
reported as a ratio to the member's within each round (median and range).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import numpy as np

from scenes.config import load_config
from scenes.evaluation.loop import evaluate
from scenes.models.ensemble_command import make_ensemble
from scenes.rundir import RunDir
from scenes.training import train

from _common import INTEL, REPO, alternated_p50, use_offline_weights


def trained(seed: int, out: Path, config: str, data: str) -> Path:
    run = out / f"seed-{seed}"
    if (run / "model" / "model.json").is_file():
        print(f"seed {seed}: reusing {run}")
        return run
    cfg = load_config(config, {"data.dir": data, "out": str(run), "seed": seed})
    started = time.perf_counter()
    train(cfg)
    print(f"seed {seed}: trained in {(time.perf_counter() - started) / 60:.1f} min")
    return run


def p50_ratios(bundles: dict[str, Path], photos: list[Path], rounds: int, calls: int):
    """{name: (p50 ms, [ratio to the first bundle's p50, per round])}."""
    medians = alternated_p50(bundles, photos, rounds, calls)
    base = medians[next(iter(bundles))]
    return {n: (statistics.median(m), [a / b for a, b in zip(m, base)]) for n, m in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--runs", nargs="*", default=[], help="trained runs to use first")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 1])
    parser.add_argument("--out", default=str(REPO / "runs" / "ensemble"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    use_offline_weights()
    out = Path(args.out)
    runs = [Path(r) for r in args.runs]
    for seed in args.seeds[len(runs) :]:
        runs.append(trained(seed, out, args.config, args.data))
    splits = {RunDir(r).split_csv.read_bytes() for r in runs}
    if len(splits) > 1:
        raise SystemExit("the runs were not trained on one split: no shared validation images")

    rows, bundles = [], {}
    for size in range(1, len(runs) + 1):
        for combo in itertools.combinations(range(len(runs)), size):
            name = " + ".join(runs[i].name for i in combo)
            if size == 1:
                bundle = runs[combo[0]]
            else:
                bundle = out / ("ensemble-" + "-".join(str(i) for i in combo))
                if not (bundle / "model").is_dir():
                    make_ensemble([runs[i] for i in combo], bundle)
            found = evaluate(bundle, split="val", out=False, device="cpu")
            rows.append((size, name, found.accuracy, found.macro_f1))
            if combo == tuple(range(size)):
                bundles[name] = bundle
            print(f"{name}: top-1 {found.accuracy:.4f}, macro F1 {found.macro_f1:.4f}")

    photos = sorted((INTEL / "pred").glob("*.jpg"))
    speed = p50_ratios(bundles, photos, args.rounds, args.calls)
    print(f"\nvalidation split of {runs[0]} (shared by every run)\n")
    print(
        "| members | top-1 (mean, range over combinations) | macro F1 (mean) | p50 ms | p50 / one member (median, range) |"
    )
    print("|---|---|---|---|---|")
    for size in range(1, len(runs) + 1):
        mine = [r for r in rows if r[0] == size]
        acc = [r[2] for r in mine]
        f1 = [r[3] for r in mine]
        name = next(n for n in bundles if n.count("+") == size - 1)
        p50, ratios = speed[name]
        spread = f"{min(acc):.2%}-{max(acc):.2%}" if len(acc) > 1 else "one"
        ratio = (
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if size > 1
            else "1"
        )
        print(
            f"| {size} | {np.mean(acc):.2%} ({spread}) | {np.mean(f1):.4f} | {p50:.1f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
