"""Validation top-1 of a recipe trained with and without the top label-issue suspects.

    python benchmarks/exclusion.py [--config configs/default.yaml] [--top 100] [--out DIR]
                                   [--per-class N] [--set key=value ...] [--baseline RUN]

1. Rank the training images with `scenes data issues` (pretrained backbone, cached features).
2. Train the recipe on everything (the baseline; --baseline reuses a finished run of the same
   recipe and seed instead); its split.csv says which images validate.
3. Write the top suspects that fall on the training side of that split to an exclusion list.
   The split does not depend on data.exclude (listed images are dropped after it), so with the
   same seed both runs validate on exactly the same images (checked below); suspects that
   fall in validation stay there.
4. Train the same recipe, same seed, with data.exclude.
5. Evaluate both model bundles on (a) the whole validation split and (b) the validation split
   without the suspects in it ("cleaned val", a different, smaller set: it flatters both).

--per-class N trains on a symlinked subset of N images per class (a quick end-to-end check).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from scenes.config import load_config
from scenes.data.discover import find_layout, list_labelled_files
from scenes.evaluation.loop import predict_files
from scenes.label_issues.outputs import write_issues_csv
from scenes.label_issues.ranking import find_issues
from scenes.metrics import compute_metrics
from scenes.models.features import pretrained_backbone
from scenes.rundir import RunDir
from scenes.serve.predictor import Predictor
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights


def split_by_name(run_dir: Path) -> dict[str, list[tuple[Path, str]]]:
    rows: dict[str, list[tuple[Path, str]]] = {}
    for row in RunDir(run_dir).read_split():
        rows.setdefault(row.split, []).append((row.path, row.label))
    return rows


def reuse_baseline(run_dir: Path, base) -> SimpleNamespace:
    """A finished run of the same recipe (e.g. benchmarks/train_cpu.py's) as the baseline,
    refused unless its config.yaml matches this one bar the run's own paths."""
    if not (run_dir / "model").is_dir():
        raise SystemExit(f"--baseline {run_dir}: no model/ bundle, the run did not finish")

    def recipe(cfg) -> dict:
        fields = cfg.model_dump()
        fields["out"] = fields["data"]["dir"] = fields["data"]["cache_dir"] = None
        return fields

    if recipe(load_config(run_dir / "config.yaml")) != recipe(base):
        raise SystemExit(f"--baseline {run_dir} was trained with another config; drop --baseline")
    return SimpleNamespace(run_dir=run_dir)


def scores(run_dir: Path, images: list[tuple[Path, str]]) -> tuple[float, float]:
    """(top-1, macro F1) of the run's bundle on ``images``, as `scenes evaluate` computes them."""
    model = Predictor.load(run_dir, device="cpu")
    names = model.class_names
    paths = [p for p, _ in images]
    logits, _, kept, skipped = predict_files(model, paths, tta=False, batch_size=64)
    if skipped:
        raise SystemExit(f"unreadable validation images: {skipped}")
    y_true = [names.index(images[i][1]) for i in kept]
    metrics = compute_metrics(y_true, logits.argmax(axis=1).tolist(), names)
    return metrics["accuracy"], metrics["macro_f1"]


def subset_copy(train_dir: Path, dest: Path, per_class: int) -> Path:
    for class_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        (dest / class_dir.name).mkdir(parents=True)
        for f in sorted(class_dir.iterdir())[:per_class]:
            (dest / class_dir.name / f.name).symlink_to(f.resolve())
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--top", type=int, default=100, help="suspects to exclude (default 100)")
    parser.add_argument("--per-class", type=int, help="train on N images per class only")
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"exclusion-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--baseline", type=Path, help="a finished run of this recipe to reuse")
    args = parser.parse_args()
    use_offline_weights()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_dir = find_layout(args.data).train_dir
    with tempfile.TemporaryDirectory() as tmp:
        if args.per_class:
            train_dir = subset_copy(train_dir, Path(tmp) / "subset", args.per_class)
        base = load_config(args.config, {"data.dir": str(train_dir)}, args.sets)

        files = list_labelled_files(train_dir)
        backbone = pretrained_backbone(
            "mobilenet_v2", "IMAGENET1K_V1", None, 150, files.class_names
        )
        issues = find_issues(files, backbone, base.resolved_cache_dir(), seed=base.seed)
        suspects = issues.ranked[: args.top]
        write_issues_csv(issues, suspects, out / "label_issues.csv")
        suspect_paths = {Path(issues.paths[i]).absolute() for i in suspects}

        if args.baseline:
            baseline = reuse_baseline(args.baseline, base)
        else:
            started = time.perf_counter()
            baseline = train(base.model_copy(update={"out": str(out / "all")}))
            print(f"baseline trained in {(time.perf_counter() - started) / 60:.1f} min")
        split = split_by_name(baseline.run_dir)
        in_train = [p for p, _ in split["train"] if p.absolute() in suspect_paths]
        exclude_file = out / "exclude_train_side.csv"
        exclude_file.write_text("path\n" + "".join(f"{p}\n" for p in in_train))

        cleaned_cfg = base.model_copy(deep=True, update={"out": str(out / "excluded")})
        cleaned_cfg.data.exclude = str(exclude_file)
        started = time.perf_counter()
        cleaned = train(cleaned_cfg)
        print(f"run with exclusion trained in {(time.perf_counter() - started) / 60:.1f} min")
        cleaned_split = split_by_name(cleaned.run_dir)
        if sorted(cleaned_split["val"]) != sorted(split["val"]):
            raise SystemExit("the two runs validated on different images: comparison invalid")

        full_val = split["val"]
        clean_val = [(p, y) for p, y in full_val if p.absolute() not in suspect_paths]
        print(
            f"\n{len(issues.paths):,} images; top {len(suspects)} suspects: {len(in_train)} on "
            f"the training side (excluded), {len(full_val) - len(clean_val)} in validation "
            f"(kept in the full val, left out of the cleaned val)\n"
        )
        print(
            "| run | training images | val top-1 | val macro F1 "
            f"| cleaned-val top-1 ({len(clean_val)}) | cleaned-val macro F1 |"
        )
        print("|---|---|---|---|---|---|")
        runs = (("all images", baseline), (f"{len(in_train)} suspects excluded", cleaned))
        for name, run in runs:
            n_train = len(split_by_name(run.run_dir)["train"])
            acc, f1 = scores(run.run_dir, full_val)
            clean_acc, clean_f1 = scores(run.run_dir, clean_val)
            print(
                f"| {name} | {n_train:,} | {acc:.4f} | {f1:.4f} | {clean_acc:.4f} | {clean_f1:.4f} |"
            )
        print(f"\nvalidation: the same {len(full_val)} images for both runs; seed {base.seed}")


if __name__ == "__main__":
    main()
