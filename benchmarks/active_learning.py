"""Does choosing what to label (``scenes data select``) beat labelling at random?

    python benchmarks/active_learning.py [--data DIR] [--pool 3000] [--val 1000]
        [--rounds 3] [--round-size 150] [--seeds 0 1 2 3 4] [--per-pick 5]
        [--figure FILE] [--table FILE]

A stratified subset of the Intel training split is drawn (``--pool`` photos that play the
unlabelled pool, ``--val`` held-out validation photos; a subset because the backbone features
of all 14,034 photos take too long on 2 shared CPU cores). Each seed starts from the same random
10% of the pool, labelled; each round a linear head (the logistic regression of ``data issues``)
is fitted on the labelled photos' frozen features, scored on the validation photos, and picks
``--round-size`` more photos to label with ``scenes.selection.ranking.select``, the function
behind ``scenes data select``: random, margin, diverse. Features are the pretrained
MobileNetV2's (IMAGENET1K_V1, 150 px), computed once and cached by content; they are also
the features ``diverse`` spreads its picks over (the head's input, as the command uses the
network's penultimate layer). Head-only training on cached features stands in for
fine-tuning, for speed: the selection code is the command's, the model is not.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from scenes.atomic import replacing, write_text
from scenes.config import load_config
from scenes.data.discover import list_labelled_files
from scenes.label_issues.ranking import HEAD_C
from scenes.models.features import image_features, pretrained_backbone
from scenes.selection.ranking import CANDIDATES_PER_PICK, select

from _common import INTEL, REPO, use_offline_weights

STRATEGIES = ("random", "margin", "diverse")


def fit_head(features: np.ndarray, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, tol=1e-3, max_iter=500))
    return head.fit(features, labels)


def learning_curve(features, labels, val, start, strategy, rounds, size, seed, per_pick):
    """[(labels used, validation accuracy)] after each round, starting from ``start``."""
    labelled = list(start)
    curve = []
    for round_ in range(rounds + 1):
        head = fit_head(features[labelled], labels[labelled])
        accuracy = float((head.predict(val[0]) == val[1]).mean())
        curve.append((len(labelled), accuracy))
        if round_ == rounds:
            break
        taken = np.zeros(len(labels), bool)
        taken[labelled] = True
        unlabelled = np.flatnonzero(~taken)
        probs = head.predict_proba(features[unlabelled])
        chosen, _ = select(strategy, probs, size, features[unlabelled], seed + round_, per_pick)
        labelled.extend(unlabelled[chosen].tolist())
    return curve


def draw(curves: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy in STRATEGIES:
        runs = np.array([curves[(strategy, s)] for s in sorted({k[1] for k in curves})])
        counts, accs = runs[0, :, 0], runs[:, :, 1] * 100
        ax.plot(counts, accs.mean(0), marker="o", label=f"{strategy} (mean of {len(runs)} seeds)")
        ax.fill_between(counts, accs.min(0), accs.max(0), alpha=0.15)
    ax.set_xlabel("labelled photos")
    ax.set_ylabel("validation top-1 accuracy (%)")
    ax.set_title("Active learning on Intel (linear head on MobileNetV2 features)")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb") as fh:
        fig.savefig(fh, format="png", facecolor="white")


def table(curves: dict, seeds: list[int]) -> str:
    counts = [c for c, _ in curves[(STRATEGIES[0], seeds[0])]]
    head = "| strategy | " + " | ".join(f"{c} labels" for c in counts) + " |"
    lines = [head, "|---" * (len(counts) + 1) + "|"]
    for strategy in STRATEGIES:
        cells = []
        for i in range(len(counts)):
            accs = [curves[(strategy, s)][i][1] * 100 for s in seeds]
            cells.append(f"{np.mean(accs):.2f} ({', '.join(f'{a:.2f}' for a in accs)})")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(INTEL / "train"))
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-size", type=int, default=150)
    parser.add_argument(
        "--per-pick", type=int, default=CANDIDATES_PER_PICK, help="diverse's candidates per pick"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--figure", default=str(REPO / "docs/figures/active_learning.png"))
    parser.add_argument("--table", default="active_learning.md")
    args = parser.parse_args()
    use_offline_weights()
    from sklearn.model_selection import train_test_split

    started = time.perf_counter()
    files = list_labelled_files(args.data)
    picked, _ = train_test_split(
        np.arange(len(files.paths)),
        train_size=args.pool + args.val,
        stratify=files.labels,
        random_state=0,
    )
    paths = [files.paths[i] for i in picked]
    backbone = pretrained_backbone("mobilenet_v2", "IMAGENET1K_V1", None, 150, files.class_names)
    found = image_features(paths, backbone, load_config().resolved_cache_dir())
    features = found.features
    labels = np.asarray(files.labels)[picked][found.kept]
    pool, val = train_test_split(
        np.arange(len(labels)), test_size=args.val, stratify=labels, random_state=0
    )
    features_pool, labels_pool = features[pool], labels[pool]
    held_out = (features[val], labels[val])
    print(f"features: {len(labels)} photos in {time.perf_counter() - started:.0f} s")
    curves = {}
    for seed in args.seeds:
        start = np.random.default_rng(seed).permutation(len(pool))[: len(pool) // 10]
        for strategy in STRATEGIES:
            curve = learning_curve(
                features_pool, labels_pool, held_out, start, strategy,
                args.rounds, args.round_size, seed, args.per_pick,
            )  # fmt: skip
            curves[(strategy, seed)] = curve
            print(strategy, seed, " ".join(f"{n}:{a:.4f}" for n, a in curve), flush=True)
    draw(curves, Path(args.figure))
    text = table(curves, args.seeds)
    write_text(args.table, text)
    print(text)
    print(f"total {time.perf_counter() - started:.0f} s; figure {args.figure}")


if __name__ == "__main__":
    main()
