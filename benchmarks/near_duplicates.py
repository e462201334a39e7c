"""Precision and recall of the near-duplicate test on planted copies of real training photos.

    python benchmarks/near_duplicates.py [--photos 1000] [--copies 400] [--seed 0] [--out FILE]

1. Draw --photos Intel training photos (all classes, seeded).
2. Plant --copies copies of some of them in a temporary folder, the transformations taken in
   turn: JPEG re-encoded at quality 50, resized to 100 px, cropped by 5% on each side,
   brightened by 25%.
3. Embed and hash originals and copies as scenes.models.near does and, for each setting
   (cosine threshold of the features, pHash bits; each test alone, then both), count (a)
   copies whose group holds their original (recall, per transformation) and (b) false
   links: pairs the test calls near whose photos come from two different originals, and the groups they fall in, per thousand photos. Some may be
   duplicates the dataset already had (the figure ``scenes data check --near`` draws tells
   them apart); they are counted as false here.
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
from PIL import Image, ImageEnhance

from scenes.atomic import write_bytes, write_text
from scenes.config import default_cache_dir
from scenes.models.near import (
    HASH_BITS,
    NEAR_DISTANCE,
    embed_files,
    group_pairs,
    near_backbone,
    near_pairs,
)

from _common import INTEL, use_offline_weights

# (cosine threshold, pHash bits); -1 bits: features alone; a threshold of -1: pHash alone.
SETTINGS = [
    *((t, -1) for t in (0.06, 0.08, 0.1, 0.12, 0.15, 0.2)),
    *((-1.0, b) for b in (4, 6, 8, 10, 12)),
    *((t, b) for t in (0.06, 0.08, 0.1) for b in (6, 8, 10)),
]


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


KINDS = ["jpeg", "resize", "crop", "brightness"]


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


def measure(embedded, count: int, planted, settings) -> list[dict]:
    """Per (cosine threshold, hash bits): recall (a copy grouped with its own original) per
    transformation, and the false links: pairs the test calls near whose photos come from
    two different originals (a copy's source is its original), and the groups they fall in."""
    source = np.concatenate([np.arange(count), [original for _, original, _ in planted]])
    rows = []
    for t, bits in settings:
        pairs = near_pairs(embedded.features, embedded.bits, t, bits)
        groups = group_pairs(len(embedded.features), pairs)
        group_of = {i: g for g, members in enumerate(groups) for i in members}
        found = {kind: [0, 0] for kind in KINDS}
        for offset, (_, original, kind) in enumerate(planted):
            copy = count + offset
            found[kind][1] += 1
            found[kind][0] += copy in group_of and group_of[copy] == group_of.get(original)
        i, j = pairs[:, 0].astype(int), pairs[:, 1].astype(int)
        false = source[i] != source[j]
        false_groups = {group_of[a] for a in i[false]}
        total = sum(f for f, _ in found.values()) / sum(n for _, n in found.values())
        rows.append(
            {
                "cosine_threshold": t,
                "phash_bits": bits,
                "recall": round(total, 4),
                **{f"recall_{k}": round(f / n, 4) for k, (f, n) in found.items()},
                "false_pairs": int(false.sum()),
                "groups_with_a_false_pair": len(false_groups),
                "false_groups_per_thousand_photos": round(1000 * len(false_groups) / count, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the table as JSON here too")
    args = parser.parse_args()
    use_offline_weights()
    files = sorted((INTEL / "train").glob("*/*.jpg"))
    originals = random.Random(args.seed).sample(files, args.photos)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        planted = plant(originals, min(args.copies, args.photos), Path(tmp))
        paths = originals + [p for p, _, _ in planted]
        embedded = embed_files(paths, near_backbone(), default_cache_dir(), progress=False)
        if len(embedded.kept) != len(paths):
            raise SystemExit(f"unreadable photos: {embedded.failed}")
        rows = measure(embedded, len(originals), planted, SETTINGS)
    result = {
        "command": f"python benchmarks/near_duplicates.py --photos {args.photos} "
        f"--copies {args.copies} --seed {args.seed}",
        "default": {"cosine_threshold": NEAR_DISTANCE, "phash_bits": HASH_BITS},
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
