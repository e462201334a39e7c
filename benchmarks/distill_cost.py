"""What a distillation teacher costs per training step: live answers against cached ones.

    python benchmarks/distill_cost.py --teacher RUN [RUN ...] [--rounds 5] [--steps 8]

One training step of the student (the default recipe's network, MobileNetV2 at 150 px from
the shared ImageNet file; a batch of 32 real Intel photos; forward, backward, AdamW) in three
ways, with the real ``training.distill.Distiller``:

- plain: the label loss alone (a run without a teacher);
- live: the teachers answer the batch (``train.teacher_outputs: live``);
- cached: the batch's answers are looked up (``cached``), after one pass over the images.

The three take turns in --rounds blocks of --steps steps (the order rotated every round); the
block medians give live/plain and cached/plain per round (median and range). The one-time pass
of ``cached`` is measured separately as images per second (the teachers' forward alone, in
blocks alternated with nothing else), and scaled to the training split of ../shared/data/intel
(12,632 images at the default's 10% validation fraction).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from scenes.config import load_config
from scenes.data.cache import decode_images
from scenes.data.discover import list_labelled_files
from scenes.data.transforms import normalize_batch
from scenes.models import build_model
from scenes.training.distill import make_distiller
from scenes.training.setup import bundle_meta

from _common import INTEL, median_range, use_offline_weights

TRAINING_IMAGES = 12_632  # the shared train split less its stratified 10% validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", nargs="+", required=True, help="trained runs or bundles")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    use_offline_weights()
    torch.manual_seed(0)

    cfg = load_config(overrides={"train.teacher": args.teacher})
    cached_cfg = load_config(
        overrides={"train.teacher": args.teacher, "train.teacher_outputs": "cached"}
    )
    files = list_labelled_files(INTEL / "train")
    picked = np.random.default_rng(0).choice(len(files.paths), args.batch * 4, replace=False)
    decoded = decode_images([files.paths[i] for i in picked], cfg.data.image_size, None)
    pixels = np.ascontiguousarray(decoded.pixels)
    built = build_model(
        cfg.model.name, len(files.class_names), pretrained=True, image_size=cfg.data.image_size
    )
    student, meta = built.module.train(), bundle_meta(built, cfg, files.class_names)
    live = make_distiller(cfg, files.class_names, meta)
    cached = make_distiller(cached_cfg, files.class_names, meta)
    cached.cache_dir = None  # the pass is timed below, never read from a cache folder
    cached.answer_once(pixels, meta.mean, meta.std)
    assert cached.teacher is None and cached.answers is not None and live.teacher is not None
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    labels = torch.from_numpy(np.asarray(files.labels)[picked])
    batches = [
        torch.from_numpy(pixels[i : i + args.batch]).permute(0, 3, 1, 2)
        for i in range(0, len(pixels), args.batch)
    ]

    def step(mode: str, k: int) -> float:
        start = time.perf_counter()
        rows = torch.arange(k * args.batch, (k + 1) * args.batch)
        x = normalize_batch(batches[k], meta.mean, meta.std)
        logits = student(x)
        loss = F.cross_entropy(logits, labels[rows])
        if mode == "live":
            loss = live.loss(loss, logits, x)
        elif mode == "cached":
            loss = cached.loss(loss, logits, x, rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    modes = ["plain", "live", "cached"]
    for mode in modes:  # warm-up
        step(mode, 0)
    medians = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes[r % 3 :] + modes[: r % 3]:
            times = [step(mode, s % len(batches)) for s in range(args.steps)]
            medians[mode].append(statistics.median(times))
    print(f"teachers: {' + '.join(live.names)}")
    print(f"student step (batch {args.batch}, {cfg.data.image_size} px), median of blocks:")
    for mode in modes:
        print(f"  {mode:<7} {median_range([t * 1000 for t in medians[mode]])} ms")
    for mode in ("live", "cached"):
        ratios = [a / b for a, b in zip(medians[mode], medians["plain"])]
        print(f"  {mode}/plain {median_range(ratios)}")

    rates = []
    for _ in range(args.rounds):
        again = make_distiller(cached_cfg, files.class_names, meta)
        again.cache_dir = None
        start = time.perf_counter()
        again.answer_once(pixels, meta.mean, meta.std)
        rates.append(len(pixels) / (time.perf_counter() - start))
    rate = statistics.median(rates)
    print(
        f"cached: the teachers' one pass {median_range(rates)} images/s, so about "
        f"{TRAINING_IMAGES / rate / 60:.1f} min for the {TRAINING_IMAGES:,} training images"
    )


if __name__ == "__main__":
    main()
