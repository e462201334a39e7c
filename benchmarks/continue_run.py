"""Adding a class to a trained run with `scenes train --init`: forgetting, rehearsal, time.

    python benchmarks/continue_run.py [--new-class street] [--rehearsal 200] [--per-class N]
                                      [--eval-per-class 150] [--config FILE] [--set k=v ...]
                                      [--out DIR]

Intel has 6 classes and no 7th, so the "new" class is one of them held out: the base run is
trained on the other 5 and has never been given a labelled photo of it (its ImageNet
backbone has seen streets, as any pretrained one has). Then, with the same recipe:

1. base: the 5 old classes, from ImageNet weights;
2. --init base on the new class's photos alone, without rehearsal (the old classes keep
   their head rows but get no image: what forgetting looks like);
3. the same with ``train.rehearsal=N``: N of the base run's training images per old class;
4. scratch: all 6 classes from ImageNet weights (the alternative to continuing).

The last ``--eval-per-class`` photos of each class (by file name) are trained on by no run;
every model is scored on them through the Predictor: top-1 on the old classes' photos
(forgetting: base vs 2 and 3), recall of the new class, top-1 on all of them, and the wall
time of each run. --per-class N trains on the first N photos per class only: a smaller
measurement (the table's header says so), e.g. 500 for runs of minutes instead of half an hour.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from scenes.config import load_config
from scenes.data.discover import find_layout
from scenes.evaluation.loop import predict_files
from scenes.serve.predictor import Predictor
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights


def link_folder(dest: Path, files: dict[str, list[Path]]) -> Path:
    """``dest/<class>/`` holding symlinks to ``files`` of each class."""
    for name, paths in files.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for path in paths:
            (dest / name / path.name).symlink_to(path.resolve())
    return dest


def held_out(train_dir: Path, eval_per_class: int, per_class: int | None):
    """(training pool, evaluation photos) per class: the last ``eval_per_class`` files of each
    class by name are for evaluation only."""
    pool, evaluation = {}, {}
    for folder in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        pool[folder.name] = files[:-eval_per_class][:per_class]
        evaluation[folder.name] = files[-eval_per_class:]
    return pool, evaluation


def scores(run_dir: Path, evaluation: dict[str, list[Path]], new_class: str) -> dict:
    """Top-1 on the old classes' photos, recall of the new class, top-1 on all photos."""
    model = Predictor.load(run_dir, device="cpu")
    names = model.class_names
    photos = [(p, c) for c, paths in evaluation.items() for p in paths]
    logits, _, kept, skipped = predict_files(model, [p for p, _ in photos], False, 64)
    if skipped:
        raise SystemExit(f"unreadable evaluation photos: {skipped}")
    predicted = np.asarray([names[i] for i in logits.argmax(axis=1)])
    truth = np.asarray([photos[i][1] for i in kept])
    right, new = predicted == truth, truth == new_class
    return {"old": right[~new].mean(), "new": right[new].mean(), "all": right.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--new-class", default="street", help="the held-out 'new' class")
    parser.add_argument("--rehearsal", type=int, default=200, help="images per old class")
    parser.add_argument("--per-class", type=int, help="train on N photos per class only")
    parser.add_argument("--eval-per-class", type=int, default=150)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"continue-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    args = parser.parse_args()
    use_offline_weights()
    out = Path(args.out)
    pool, evaluation = held_out(
        find_layout(args.data).train_dir, args.eval_per_class, args.per_class
    )
    if args.new_class not in pool:
        raise SystemExit(f"--new-class {args.new_class}: not one of {', '.join(pool)}")
    old = {c: paths for c, paths in pool.items() if c != args.new_class}
    folders = {
        "old": link_folder(out / "data" / "old", old),
        "new": link_folder(out / "data" / "new", {args.new_class: pool[args.new_class]}),
        "all": link_folder(out / "data" / "all", pool),
    }

    def run(name: str, data: str, **overrides) -> tuple[Path, float]:
        given = {"data.dir": str(folders[data]), "out": str(out / name), **overrides}
        started = time.perf_counter()
        result = train(load_config(args.config, given, args.sets))
        return result.run_dir, time.perf_counter() - started

    base = run("base", "old")
    arms = {
        f"base: {len(old)} old classes": (base, "old"),
        "--init base, new class only": (run("init", "new", **{"model.init": str(base[0])}), "new"),
        f"--init base, new class + rehearsal {args.rehearsal}": (
            run(
                "init-rehearsal",
                "new",
                **{"model.init": str(base[0]), "train.rehearsal": args.rehearsal},
            ),
            "new",
        ),
        "scratch: all 6 classes": (run("scratch", "all"), "all"),
    }
    n_eval = sum(len(paths) for paths in evaluation.values())
    pool_size = f"the first {args.per_class} per class" if args.per_class else "all"
    print(
        f"\nnew class: {args.new_class}; training photos: {pool_size} (less the evaluation "
        f"ones); evaluation: the last {args.eval_per_class} photos of each class ({n_eval}), "
        f"trained on by no run; recipe {args.config} {' '.join(args.sets)}\n"
    )
    print(
        "| run | training photos given | wall time | old-class top-1 | new-class recall | top-1 |"
    )
    print("|---|---|---|---|---|---|")
    for label, ((run_dir, seconds), data) in arms.items():
        given = sum(
            len(list((folders[data] / c).iterdir())) for c in pool if (folders[data] / c).is_dir()
        )
        s = scores(run_dir, evaluation, args.new_class)
        print(
            f"| {label} | {given:,} | {seconds / 60:.1f} min | {s['old']:.4f} | {s['new']:.4f} "
            f"| {s['all']:.4f} |"
        )
    print("\n(rehearsal images come from the base run's own training photos, on top of these)")


if __name__ == "__main__":
    main()
