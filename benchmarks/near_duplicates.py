"""Precision and recall of the near-duplicate test on planted copies of real training photos.

    python benchmarks/near_duplicates.py [--photos 1000|all] [--copies 400] [--seed 0]
                                         [--out FILE] [--sheet FILE.jpg]

1. Draw --photos Intel training photos (all classes, seeded; ``all``: the whole split).
2. Plant --copies copies of some of them in a temporary folder, the transformations taken in
   turn: JPEG re-encoded at quality 50, resized to 100 px, cropped by 5% on each side,
   brightened by 25%.
3. Embed and hash originals and copies as scenes.models.near does and, for each setting
   (the threshold on the near distance and the weight of its pHash term; weight 0 is the
   features alone), and for the test shipped before it (``either``: features within 0.08
   or pHash within 10 bits), count (a) copies whose group holds their original (recall, per
   transformation) and (b) links between different photos: pairs the test calls near whose
   photos come from two different originals, how many of those are byte-identical (copies
   the dataset already holds), the groups they fall in, and the largest group. On a large
   sample many links are duplicates the dataset already holds (frames of one burst, the
   same photo cropped), which only an eye tells apart: --sheet draws 40 random links of
   the default test and 40 of those only ``either`` makes, to be judged.
Features are cached by content in the scenes cache ($SCENES_CACHE), so a rerun is quick.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from scenes.atomic import replacing, write_bytes, write_text
from scenes.config import default_cache_dir
from scenes.models.near import (
    HASH_WEIGHT,
    NEAR_DISTANCE,
    embed_files,
    group_pairs,
    near_backbone,
    near_pairs,
)

from _common import INTEL, use_offline_weights

# (near-distance threshold, weight of the pHash term); weight 0: the features alone.
SETTINGS = [
    *((t, 0.0) for t in (0.06, 0.08, 0.1, 0.15, 0.2)),
    *((t, 0.3) for t in (0.16, 0.18, 0.2)),
    *((t, 0.5) for t in (0.18, 0.2, 0.22, 0.24)),
    *((t, 0.8) for t in (0.24, 0.28)),
]
EITHER = ("either", "either")  # the test before: features within 0.08, or pHash within 10 bits
KINDS = ["jpeg", "resize", "crop", "brightness"]


def either_pairs(features: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """(i, j, 0) rows of the pairs the earlier test called near: cosine distance <= 0.08 or
    at most 10 of 64 pHash bits differ."""
    from sklearn.neighbors import radius_neighbors_graph

    found = set()
    for points, radius, metric in ((features, 0.08, "cosine"), (bits, 10.5 / 64, "hamming")):
        graph = radius_neighbors_graph(points, radius, metric=metric).tocoo()
        found |= {(i, j) for i, j in zip(graph.row.tolist(), graph.col.tolist()) if i < j}
    return np.array([(i, j, 0.0) for i, j in sorted(found)]).reshape(-1, 3)


def transformed(image: Image.Image, kind: str) -> Image.Image:
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=50)
        return Image.open(buffer).convert("RGB")
    if kind == "resize":
        return image.resize((100, 100), Image.Resampling.BILINEAR)
    if kind == "crop":
        w, h = image.size
        dx, dy = round(0.05 * w), round(0.05 * h)
        return image.crop((dx, dy, w - dx, h - dy))
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(1.25)
    raise ValueError(kind)


def plant(originals: list[Path], copies: int, folder: Path) -> list[tuple[Path, int, str]]:
    """(copy path, index of its original, transformation) of each planted copy."""
    planted = []
    for n in range(copies):
        kind = KINDS[n % len(KINDS)]
        with Image.open(originals[n]) as image:
            copy = transformed(image.convert("RGB"), kind)
        buffer = io.BytesIO()
        copy.save(buffer, "PNG")  # lossless: the transformation alone changes the photo
        path = folder / f"copy{n:05d}_{kind}.png"
        write_bytes(path, buffer.getvalue(), durable=False)
        planted.append((path, n, kind))
    return planted


def pairs_of(embedded, setting) -> np.ndarray:
    if setting == EITHER:
        return either_pairs(embedded.features, embedded.bits)
    threshold, weight = setting
    return near_pairs(embedded.features, embedded.bits, threshold, weight)


def measure(embedded, count: int, planted, setting) -> tuple[dict, np.ndarray]:
    """One setting's row (recall per transformation, links between different photos) and
    its links between different, not byte-identical, originals."""
    source = np.concatenate([np.arange(count), [original for _, original, _ in planted]])
    digests = np.array(embedded.digests)
    pairs = pairs_of(embedded, setting)
    groups = group_pairs(len(embedded.features), pairs)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    found = {kind: [0, 0] for kind in KINDS}
    for offset, (_, original, kind) in enumerate(planted):
        copy = count + offset
        found[kind][1] += 1
        found[kind][0] += copy in group_of and group_of[copy] == group_of.get(original)
    i, j = pairs[:, 0].astype(int), pairs[:, 1].astype(int)
    false = source[i] != source[j]
    identical = false & (digests[i] == digests[j])
    false_groups = {group_of[a] for a in i[false]}
    total = sum(f for f, _ in found.values()) / sum(n for _, n in found.values())
    row = {
        "near_distance": setting[0],
        "hash_weight": setting[1],
        "recall": round(total, 4),
        **{f"recall_{k}": round(f / n, 4) for k, (f, n) in found.items()},
        "pairs_of_different_photos": int(false.sum()),
        "of_which_byte_identical": int(identical.sum()),
        "groups_with_such_a_pair": len(false_groups),
        "largest_group": max((len(g) for g in groups), default=0),
        "groups": len(groups),
    }
    links = pairs[false & ~identical][:, :2].astype(int)
    return row, links


def draw_sheet(embedded, paths: list[Path], default_links, either_links, path: Path, seed: int):
    """40 random links of the default test, then 40 that only ``either`` makes, two per row."""
    rng = random.Random(seed)
    default_set = {tuple(p) for p in default_links.tolist()}
    only_either = [p for p in either_links.tolist() if tuple(p) not in default_set]
    panels = []
    for title, links in (("default", default_links.tolist()), ("only either", only_either)):
        chosen = rng.sample(links, min(40, len(links)))
        panels += [
            (f"{title} {n + 1}/{len(chosen)} of {len(links)}", pair)
            for n, pair in enumerate(chosen)
        ]
    size, rows = 110, (len(panels) + 1) // 2
    sheet = Image.new("RGB", (2 * (2 * size + 170), rows * (size + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (title, (a, b)) in enumerate(panels):
        x, y = (n % 2) * (2 * size + 170), (n // 2) * (size + 6)
        for k, index in enumerate((a, b)):
            with Image.open(paths[embedded.kept[index]]) as image:
                sheet.paste(image.convert("RGB").resize((size, size)), (x + k * size, y))
        cosine = 1 - float(embedded.features[a] @ embedded.features[b])
        bits = int((embedded.bits[a] != embedded.bits[b]).sum())
        draw.text(
            (x + 2 * size + 6, y + 6), f"{title}\ncosine {cosine:.3f}\n{bits} bits", fill="black"
        )
    with replacing(path, "wb") as fh:
        sheet.save(fh, "JPEG", quality=85)  # 160 photos: a PNG would weigh megabytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="1000", help="a number, or all")
    parser.add_argument("--copies", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the table as JSON here too")
    parser.add_argument("--sheet", type=Path, help="draw the links to judge by eye here (JPEG)")
    args = parser.parse_args()
    use_offline_weights()
    files = sorted((INTEL / "train").glob("*/*.jpg"))
    count = len(files) if args.photos == "all" else int(args.photos)
    originals = random.Random(args.seed).sample(files, count)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        planted = plant(originals, min(args.copies, count), Path(tmp))
        paths = originals + [p for p, _, _ in planted]
        embedded = embed_files(paths, near_backbone(), default_cache_dir(), progress=False)
        if len(embedded.kept) != len(paths):
            raise SystemExit(f"unreadable photos: {embedded.failed}")
        links = {}
        for setting in [*SETTINGS, EITHER]:
            row, links[setting] = measure(embedded, count, planted, setting)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.sheet:
            default = links[(NEAR_DISTANCE, HASH_WEIGHT)]
            draw_sheet(embedded, paths, default, links[EITHER], args.sheet, args.seed)
    result = {
        "command": f"python benchmarks/near_duplicates.py --photos {args.photos} "
        f"--copies {args.copies} --seed {args.seed}",
        "default": {"near_distance": NEAR_DISTANCE, "hash_weight": HASH_WEIGHT},
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
