"""A multi-label model on real photos: mean average precision and F1 on held-out composites.

    python benchmarks/multilabel.py [--train 6000] [--test 1200] [--out DIR] [--set key=value ...]

From ``../shared/data/intel/train`` (each photo used once, seeded):
- a pair: the left half of a photo of one class beside the right half of a photo of another
  (150x150, both labels); half of the images;
- a single photo (one label); the other half.
The training composites and the test composites come from disjoint photos. The default recipe
is trained with ``data.labels`` (its own validation split, iterative stratification, picks the
per-class thresholds); the test composites are measured as ``scenes evaluate --labels`` does.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from scenes.config import load_config
from scenes.data.discover import find_layout, list_labelled_files
from scenes.evaluation.loop import evaluate
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights


def compose(photos: list, names: list[str], count: int, folder: Path, rng) -> Path:
    """``count`` composites from ``photos`` [(path, class index)], and their labels CSV."""
    (folder / "images").mkdir(parents=True)
    rows, queue = [], list(photos)
    for i in range(count):
        a = queue.pop()
        if i % 2 == 0:  # a pair: the next photo of another class
            j = next(j for j in range(len(queue) - 1, -1, -1) if queue[j][1] != a[1])
            b = queue.pop(j)
            left = Image.open(a[0]).convert("RGB").resize((150, 150)).crop((0, 0, 75, 150))
            right = Image.open(b[0]).convert("RGB").resize((150, 150)).crop((75, 0, 150, 150))
            image = Image.new("RGB", (150, 150))
            image.paste(left, (0, 0))
            image.paste(right, (75, 0))
            labels = " ".join(sorted({names[a[1]], names[b[1]]}))
        else:
            image, labels = Image.open(a[0]).convert("RGB").resize((150, 150)), names[a[1]]
        image.save(folder / "images" / f"{i:05d}.jpg", quality=95)
        rows.append((f"images/{i:05d}.jpg", labels))
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "labels"])
        writer.writerows(rows)
    return folder / "labels.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--train", type=int, default=6000, help="training composites")
    parser.add_argument("--test", type=int, default=1200, help="test composites")
    parser.add_argument("--seed", type=int, default=0, help="seeds the composites")
    parser.add_argument(
        "--out", default=str(REPO / "runs" / f"multilabel-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    use_offline_weights()
    files = list_labelled_files(find_layout(args.data).train_dir)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(files.paths))
    photos = [(files.paths[i], int(files.labels[i])) for i in order]
    needed = (args.train + args.test) * 3 // 2 + 2
    if needed > len(photos):
        raise SystemExit(f"{needed} photos needed, {len(photos)} found: lower --train/--test")
    test_photos, train_photos = photos[: args.test * 3 // 2 + 1], photos[args.test * 3 // 2 + 1 :]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train_csv = compose(train_photos, files.class_names, args.train, Path(tmp) / "train", rng)
        test_csv = compose(test_photos, files.class_names, args.test, Path(tmp) / "test", rng)
        print(f"composed in {time.perf_counter() - started:.0f} s")
        cfg = load_config(
            args.config,
            {"data.dir": str(train_csv.parent), "data.labels": str(train_csv), "out": args.out},
            args.sets,
        )
        started = time.perf_counter()
        run = train(cfg)
        print(f"trained in {(time.perf_counter() - started) / 60:.1f} min")
        val = evaluate(run.run_dir, split="val", out=Path(args.out) / "eval" / "val")
        test = evaluate(run.run_dir, labels_csv=test_csv, out=Path(args.out) / "eval" / "test")
    meta = json.loads((run.run_dir / "model" / "model.json").read_text())
    print(f"\nthresholds (chosen on the validation split): {meta['thresholds']}\n")
    print("| images | count | mAP (macro) | micro F1 | macro F1 |")
    print("|---|---|---|---|---|")
    for name, result in (("validation (thresholds chosen on it)", val), ("test", test)):
        print(
            f"| {name} | {result.num_images} | {result.map:.4f} | {result.micro_f1:.4f} "
            f"| {result.macro_f1:.4f} |"
        )


if __name__ == "__main__":
    main()
