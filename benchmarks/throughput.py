"""Training throughput of the real pipeline vs the same model on random in-memory tensors.

    python benchmarks/throughput.py [--model mobilenet_v2] [--batches 20] [--rounds 5]

"pipeline": scenes' own training (Lightning Trainer, decoded-image cache of the real
../shared/data/intel/train, the configured augmentation, metrics) for N batches.
"baseline": a bare loop of forward+backward+AdamW on a random uint8 batch already in memory,
same model, batch size, image size, channels_last and normalisation.

The two alternate --rounds times (baseline, pipeline, baseline, pipeline, ...); each round's
ratio is its pipeline rate over the baseline rate measured just before it, so slow drifts of
a shared machine hit both sides of a ratio alike. Printed: every round, then the median ratio
and its spread (min-max). A ratio of 1.0 means the pipeline costs nothing beyond the model's
own forward and backward pass: data loading (inline, in the training process, with the
default num_workers=0 on CPU), augmentation, Lightning and metrics all count against it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from scenes.config import load_config
from scenes.data.loaders import make_loaders, prepare_data, training_files
from scenes.data.transforms import normalize_batch
from scenes.models import build_model
from scenes.training.module import SceneClassifier

from _common import INTEL

WARMUP = 3


class StepTimer(L.Callback):
    def __init__(self):
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.stamps.append(time.perf_counter())


def steady_rate(stamps: list[float], batch_size: int) -> float:
    steady = stamps[WARMUP - 1 :]
    return batch_size * (len(steady) - 1) / (steady[-1] - steady[0])


def pipeline_rate(cfg, data, batches: int) -> float:
    built = build_model(cfg.model.name, len(data.class_names), pretrained=False)
    train_loader, _ = make_loaders(data, cfg)
    module = SceneClassifier(built, cfg, data.class_names)
    timer = StepTimer()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=batches + WARMUP,
        limit_val_batches=0,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, train_loader)
    return steady_rate(timer.stamps, cfg.data.batch_size)


def baseline_rate(cfg, batches: int) -> float:
    built = build_model(cfg.model.name, 6, pretrained=False)
    model = built.module.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size, bs = cfg.data.image_size, cfg.data.batch_size
    images = torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 6, (bs,))
    loss_fn = torch.nn.CrossEntropyLoss()
    stamps = []
    for _ in range(batches + WARMUP):
        x = normalize_batch(images, built.mean, built.std, channels_last=True)
        loss = loss_fn(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return steady_rate(stamps, bs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--preset", default="classic", help="augmentation preset")
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config field")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: fewer alternations cannot show the spread")
    cfg = load_config(
        overrides={
            "data.dir": args.data,
            "model.name": args.model,
            "data.batch_size": args.batch_size,
            "data.image_size": args.image_size,
            "model.pretrained": False,
            "augment.preset": args.preset,
            # Every layer trains, as in the baseline (the default recipe's first epoch trains
            # the head alone, which would flatter the pipeline).
            "train.mode": "full",
            "train.progress_bar": False,
        },
        sets=args.sets,
    )
    torch.manual_seed(0)
    data = prepare_data(cfg, *training_files(cfg), progress=False)  # decoded once, cached
    print(
        f"{args.model} @ {args.image_size}px, batch {args.batch_size}, augmentation "
        f"{args.preset}, {torch.get_num_threads()} threads, {args.batches} timed batches a side"
    )
    print(f"{'round':>5} {'baseline img/s':>15} {'scenes img/s':>13} {'ratio':>6}")
    rates: dict[str, list[float]] = {"baseline": [], "scenes": []}
    ratios = []
    for i in range(args.rounds):  # the two sides alternate, so drift hits both alike
        base = baseline_rate(cfg, args.batches)
        ours = pipeline_rate(cfg, data, args.batches)
        rates["baseline"].append(base)
        rates["scenes"].append(ours)
        ratios.append(ours / base)
        print(f"{i + 1:>5} {base:>15.1f} {ours:>13.1f} {ours / base:>6.3f}", flush=True)
    print(
        f"scenes: median {statistics.median(rates['scenes']):.1f} img/s; ratio scenes/baseline: "
        f"median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, "
        f"{args.rounds} rounds); baseline median {statistics.median(rates['baseline']):.1f} img/s"
    )


if __name__ == "__main__":
    main()
