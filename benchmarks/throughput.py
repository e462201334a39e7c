"""Training throughput of the real pipeline vs the same model on random in-memory tensors.

    python benchmarks/throughput.py [--model mobilenet_v2] [--batches 30] [--image-size 150]

"pipeline": scenes' own training (Lightning Trainer, decoded-image cache of the real
../shared/data/intel/train, classic augmentation, metrics) for N batches.
"baseline": a bare loop of forward+backward+AdamW on a random uint8 batch already in memory,
same model, batch size, image size, channels_last and normalisation.
ratio = pipeline img/s / baseline img/s (1.0 means data loading is completely hidden).
Baseline runs before and after the pipeline; their mean is the reference, to damp drift.
"""

from __future__ import annotations

import argparse
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


def pipeline_rate(cfg, batches: int) -> float:
    layout, files = training_files(cfg)
    built = build_model(cfg.model.name, len(files.class_names), pretrained=False)
    data = prepare_data(cfg, layout, files, built.interpolation, progress=False)
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
    steady = timer.stamps[WARMUP - 1 :]
    return cfg.data.batch_size * (len(steady) - 1) / (steady[-1] - steady[0])


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
    steady = stamps[WARMUP - 1 :]
    return bs * (len(steady) - 1) / (steady[-1] - steady[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--data", default=str(INTEL))
    args = parser.parse_args()
    cfg = load_config(
        overrides={
            "data.dir": args.data,
            "model.name": args.model,
            "data.batch_size": args.batch_size,
            "data.image_size": args.image_size,
            "model.pretrained": False,
            "augment.preset": "classic",
            "train.progress_bar": False,
        }
    )
    torch.manual_seed(0)
    before = baseline_rate(cfg, args.batches)
    ours = pipeline_rate(cfg, args.batches)
    after = baseline_rate(cfg, args.batches)
    reference = (before + after) / 2
    print(
        f"{args.model} @ {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} threads\n"
        f"baseline (random tensors): {before:.1f} / {after:.1f} img/s (mean {reference:.1f})\n"
        f"scenes pipeline:           {ours:.1f} img/s\n"
        f"ratio pipeline/baseline:   {ours / reference:.3f}"
    )


if __name__ == "__main__":
    main()
