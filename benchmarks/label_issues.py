"""How many label errors `scenes data issues` catches on the shared Intel training set.

    python benchmarks/label_issues.py [--data DIR] [--seeds 3] [--out DIR] [--figure FILE]

1. Planted flips. The training folder is copied as symlinks into a temporary folder and
   labels are made wrong by moving links to another class folder: (a) 10 forest images moved
   to sea (the example of the issue), (b) 1% of all images, each moved to a random other
   class. Each with --seeds different draws. Counted: planted flips among the first N of the
   ranked list (label_issues.csv with --top N), and among everything cleanlab flags.
2. The real conflicting duplicates that `scenes data check` reports (the same file content
   under two labels: at most one label is right). A pair counts as caught at N when at
   least one of its files is among the first N.

Every check is scored for each of cleanlab's three ranking scores. Features come from the
pretrained MobileNetV2 (IMAGENET1K_V1, 150 px): computed once (minutes), cached by content,
so the symlinked copies and later runs reuse them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from scenes.choices import RANKING_METHODS
from scenes.config import load_config
from scenes.data.check import check_folder
from scenes.data.discover import find_layout, list_labelled_files
from scenes.label_issues.outputs import summarize, write_outputs
from scenes.label_issues.ranking import find_issues, rank_label_issues
from scenes.models.features import pretrained_backbone

from _common import INTEL, REPO, use_offline_weights

TOPS = (20, 50, 100, 200)


def positions(ranked: np.ndarray) -> dict[int, int]:
    return {int(i): r for r, i in enumerate(ranked)}


def caught_files(ranked: np.ndarray, targets: list[int]) -> list[int]:
    """Per N in TOPS, then 'flagged at all': how many of ``targets`` are ranked below N."""
    pos = positions(ranked)
    return [sum(pos.get(t, len(ranked)) < n for t in targets) for n in (*TOPS, len(ranked))]


def caught_pairs(ranked: np.ndarray, pairs: list[list[int]]) -> list[int]:
    pos = positions(ranked)
    return [
        sum(min(pos.get(t, len(ranked)) for t in pair) < n for pair in pairs)
        for n in (*TOPS, len(ranked))
    ]


def symlink_copy(train_dir: Path, dest: Path, moves: dict[Path, str]) -> dict[Path, Path]:
    """``dest/<class>/`` links to every training file; files in ``moves`` go to another class.
    Returns the new link of each moved file."""
    moved = {}
    for class_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        (dest / class_dir.name).mkdir(parents=True, exist_ok=True)
    for path in (p for p in train_dir.rglob("*") if p.is_file()):
        target_class = moves.get(path, path.parent.name)
        link = dest / target_class / path.name
        if link.exists():  # the same file name in two classes
            link = link.with_name(f"{path.parent.name}-{path.name}")
        link.symlink_to(path.resolve())
        if path in moves:
            moved[path] = link
    return moved


def draw_forest_to_sea(files, rng, count=10) -> dict[Path, str]:
    forest = files.class_names.index("forest")
    pool = [p for p, y in zip(files.paths, files.labels) if y == forest]
    return {pool[i]: "sea" for i in rng.choice(len(pool), count, replace=False)}


def draw_random(files, rng, fraction=0.01) -> dict[Path, str]:
    chosen = rng.choice(len(files.paths), round(len(files.paths) * fraction), replace=False)
    k = len(files.class_names)
    return {
        files.paths[i]: files.class_names[(files.labels[i] + rng.integers(1, k)) % k]
        for i in chosen
    }


def score_all_methods(issues, score) -> dict[str, list[int]]:
    return {
        m: score(rank_label_issues(issues.labels, issues.pred_probs, m)[0]) for m in RANKING_METHODS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "runs" / "label_issues-bench"))
    parser.add_argument("--figure", help="also save the grid of top suspects as this JPEG")
    args = parser.parse_args()
    use_offline_weights()
    cfg = load_config()
    cache = cfg.resolved_cache_dir()
    layout = find_layout(args.data)
    files = list_labelled_files(layout.train_dir)
    backbone = pretrained_backbone("mobilenet_v2", "IMAGENET1K_V1", None, 150, files.class_names)

    started = time.perf_counter()
    issues = find_issues(files, backbone, cache)
    print(
        f"features + 5-fold CV + ranking of {len(issues.paths)} images: "
        f"{time.perf_counter() - started:.0f} s"
    )
    summary = summarize(issues, 100, str(layout.train_dir))
    written = write_outputs(issues, Path(args.out), 100, summary)
    print(f"\n{summary}\n\noutputs in {args.out}")
    if args.figure:
        Image.open(written["grid"]).convert("RGB").save(args.figure, quality=85)

    # The real conflicting duplicates, as `scenes data check` reports them.
    report = check_folder(layout.train_dir)
    index = {p.resolve(): i for i, p in enumerate(issues.paths)}
    pairs = [[index[f.path.resolve()] for f in g.files] for g in report.label_conflicts]
    conflicts = score_all_methods(issues, lambda r: caught_pairs(r, pairs))
    rank_by_score = np.argsort(np.argsort(issues.scores, kind="stable"), kind="stable")
    best = sorted(int(min(rank_by_score[t] for t in pair)) + 1 for pair in pairs)

    rows = [("conflicting duplicate pairs (real)", len(pairs), conflicts, 1)]
    for name, draw in (
        ("10 forest → sea (planted)", draw_forest_to_sea),
        ("1% random (planted)", draw_random),
    ):
        totals: dict[str, np.ndarray] = {}
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            moves = draw(files, rng)
            with tempfile.TemporaryDirectory() as tmp:
                moved = symlink_copy(layout.train_dir, Path(tmp), moves)
                flipped = list_labelled_files(tmp)
                found = find_issues(flipped, backbone, cache, seed=cfg.seed, progress=False)
                where = {p: i for i, p in enumerate(found.paths)}
                targets = [where[link] for link in moved.values()]
                counts = score_all_methods(found, lambda r, t=targets: caught_files(r, t))
            for m, c in counts.items():
                totals[m] = totals.get(m, 0) + np.asarray(c)
            print(f"{name}, seed {seed}: {counts}", flush=True)
        rows.append((f"{name}, mean of {args.seeds} draws", len(moves), totals, args.seeds))

    print(
        f"\n{len(issues.paths):,} images; cleanlab flags {len(issues.ranked)} "
        f"({issues.method}); head CV accuracy {issues.cv_accuracy:.1%}\n"
    )
    head = " | ".join(f"top {n}" for n in TOPS)
    print(f"| check | errors | ranking | {head} | flagged at all |")
    print("|---|---|---|" + "---|" * (len(TOPS) + 1))
    for name, errors, by_method, draws in rows:
        for m in RANKING_METHODS:
            cells = " | ".join(f"{c / draws:.{1 if draws > 1 else 0}f}" for c in by_method[m])
            print(f"| {name} | {errors} | {m} | {cells} |")
    print(
        f"\nconflicting pairs: rank of the better-ranked file by label quality (of "
        f"{len(issues.paths):,}): {best}"
    )


if __name__ == "__main__":
    main()
