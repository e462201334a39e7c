"""What each imbalance option does for the small classes, on real photos.

    python benchmarks/imbalance.py [--minority buildings mountain sea] [--share 0.1]
                                   [--held-out 200] [--out DIR] [--set key=value ...]

From ``../shared/data/intel/train``:
1. a balanced test set: --held-out photos of every class (seeded), never trained on;
2. a training folder of the rest (symlinks): every photo of three classes and --share (a
   tenth) of the three --minority classes;
3. the default recipe trained on it (the same seed, the same split of the training folder)
   with each option: nothing, ``train.class_weights=balanced``, ``=effective`` and
   ``data.sampler=balanced``;
4. each bundle measured on the balanced test set: recall of each minority class, their mean,
   macro F1 and top-1 (the same as balanced accuracy here: every class has as many photos).

Each option's measurement is kept in ``OUT/<option>/result.json``; rerunning with the same
--out skips the options already measured (a run of all four takes over half an hour).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from scenes.config import load_config
from scenes.data.discover import find_layout, list_labelled_files
from scenes.evaluation.loop import predict_files
from scenes.metrics import compute_metrics
from scenes.serve.predictor import Predictor
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights

OPTIONS = {
    "none (shuffle, unweighted)": [],
    "train.class_weights=balanced": ["train.class_weights=balanced"],
    "train.class_weights=effective": ["train.class_weights=effective"],
    "data.sampler=balanced": ["data.sampler=balanced"],
}


def build_folders(train_dir: Path, root: Path, minority: list[str], share: float, held: int, seed):
    """(training folder, held-out test folder) of symlinks."""
    files = list_labelled_files(train_dir)
    rng = np.random.default_rng(seed)
    counts = {}
    for c, name in enumerate(files.class_names):
        members = [files.paths[i] for i in np.flatnonzero(np.asarray(files.labels) == c)]
        order = rng.permutation(len(members))
        test = [members[i] for i in order[:held]]
        rest = [members[i] for i in order[held:]]
        if name in minority:
            rest = rest[: max(1, round(len(rest) * share))]
        for folder, chosen in ((root / "train" / name, rest), (root / "test" / name, test)):
            folder.mkdir(parents=True)
            for p in chosen:
                (folder / p.name).symlink_to(Path(p).resolve())
        counts[name] = len(rest)
    return root / "train", root / "test", counts


def measure(run_dir: Path, test_dir: Path, minority: list[str]) -> dict[str, float]:
    model = Predictor.load(run_dir, device="cpu", accept_all=True)
    files = list_labelled_files(test_dir, model.class_names)
    logits, _, kept, skipped = predict_files(model, files.paths, tta=False, batch_size=64)
    if skipped:
        raise SystemExit(f"unreadable test images: {skipped}")
    y_true = [int(files.labels[i]) for i in kept]
    m = compute_metrics(y_true, logits.argmax(axis=1).tolist(), model.class_names)
    recalls = {name: m["per_class"][name]["recall"] for name in minority}
    return {
        **recalls,
        "minority mean recall": float(np.mean(list(recalls.values()))),
        "macro F1": m["macro_f1"],
        "top-1": m["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--minority", nargs=3, default=["buildings", "mountain", "sea"])
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--held-out", type=int, default=200, help="test photos per class")
    parser.add_argument("--seed", type=int, default=0, help="seeds the folders, not training")
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"imbalance-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    use_offline_weights()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, test_dir, counts = build_folders(
            find_layout(args.data).train_dir,
            Path(tmp),
            args.minority,
            args.share,
            args.held_out,
            args.seed,
        )
        print("training photos per class:", counts)
        results = {}
        for name, sets in OPTIONS.items():
            run_dir = out / name.split()[0]
            kept = run_dir / "result.json"
            if kept.is_file():
                results[name] = json.loads(kept.read_text())
                print(f"{name}: measured before, kept in {kept}: {results[name]}")
                continue
            cfg = load_config(
                args.config,
                {"data.dir": str(train_dir), "out": str(run_dir)},
                [*args.sets, *sets],
            )
            started = time.perf_counter()
            run = train(cfg)
            minutes = (time.perf_counter() - started) / 60
            results[name] = measure(run.run_dir, test_dir, args.minority)
            kept.write_text(json.dumps(results[name], indent=1))
            print(f"{name}: trained in {minutes:.1f} min: {results[name]}")

    columns = [*args.minority, "minority mean recall", "macro F1", "top-1"]
    print(
        f"\nbalanced test set: {args.held_out} held-out photos per class; minority classes "
        f"({', '.join(args.minority)}) trained on {args.share:.0%} of their photos\n"
    )
    print(
        "| option | "
        + " | ".join(f"{c} recall" if c in args.minority else c for c in columns)
        + " |"
    )
    print("|---|" + "---|" * len(columns))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
