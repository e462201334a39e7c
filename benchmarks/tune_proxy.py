"""A small `scenes tune` study on the CPU, on a proxy of the Intel training set.

    python benchmarks/tune_proxy.py [--trials 12] [--epochs 2] [--out ../runs/tune-proxy]
                                    [--space FILE] [--timeout 90m]

The proxy is a stratified third of ../shared/data/intel/train (the same third for a given
--fraction-seed: a per-class random sample, linked, not copied, into OUT/data); each trial
trains the default recipe with the search space's parameters for --epochs epochs (the head
epoch, then the full ones), pruning on. Rerunning continues the study. At the end, it prints
the command that trains the best trial's recipe on the full training set for a seed, to set
against the default recipe's runs (at least two seeds each: the seed alone moves a run by
about a point).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from scenes.tune.study import run_tune

from _common import INTEL, REPO, use_offline_weights


def stratified_third(source: Path, dest: Path, fraction: float, seed: int) -> Path:
    rng = random.Random(seed)
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(class_dir.iterdir())
        keep = rng.sample(files, round(len(files) * fraction))
        (dest / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in keep:
            link = dest / class_dir.name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=1 / 3)
    parser.add_argument("--fraction-seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "runs" / "tune-proxy"))
    parser.add_argument("--space")
    parser.add_argument("--timeout", type=float, help="seconds")
    args = parser.parse_args()
    use_offline_weights()
    out = Path(args.out)
    data = stratified_third(INTEL / "train", out / "data", args.fraction, args.fraction_seed)
    code = run_tune(
        config=None,
        overrides={"data.dir": str(data)},
        space=args.space,
        trials=args.trials,
        timeout=args.timeout,
        objective="val_f1",
        out=str(out),
        storage=None,
        study_name="scenes",
        prune=True,
        sets=[f"train.epochs={args.epochs}", "train.progress_bar=false"],
    )
    best = out / "best.yaml"
    if best.is_file():
        print(
            "\nthe best recipe on the full training set (repeat with --set seed=7, and the "
            "default the same way):\n"
            f"  cd benchmarks && python train_cpu.py --config {best} --set train.epochs=4 "
            "--set seed=42"
        )
    sys.exit(code)


if __name__ == "__main__":
    main()
