"""Scale out: training throughput of 1 vs 2 processes, and time to a target accuracy.

    python benchmarks/scale.py [--rounds 2] [--steps 15] [--batch-size 32]
    python benchmarks/scale.py --device cuda [--config configs/mobilenet_v2_gpu.yaml] [--target 0.94]
    python benchmarks/scale.py --device cpu --limit-images 120 --set train.epochs=1   # smoke check

Without --device: the same training (``scenes.training.train``: MobileNetV2 at 150 px, random
weights, the real Intel images from the decoded cache, classic augmentation) runs in one
process and in two DDP processes (gloo, Lightning's launcher: each process gets
cores / processes threads), alternating --rounds times. Each run trains one epoch of a subset
just large enough for 3 warm-up and --steps timed steps per process; the rate is the images of
the timed steps of all processes per second (the processes step together: DDP synchronises
gradients every step). On a 2-core CPU two processes cannot be faster than one: this measures
what the second process costs (gradient all-reduce, duplicated work), not a speed-up.

With --device: time to accuracy. One process trains --config (``scenes.training.train``, the
recipe's data.on_device: batches drawn and augmented on the device) on the training folder
(default: all of ../shared/data/intel/train; --limit-images N takes N/6 per class) with a
fresh decoded-image cache, and prints the training rate (images per second of the training
steps, validation excluded), the wall time from the start of the training process (Python
start-up, imports and decoding included) until the validation top-1 first reached --target,
the validation top-1 of every epoch and the best one. On the CPU it runs the same code.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from scenes.config import load_config
from scenes.training import train

from _common import INTEL, REPO, use_offline_weights

WARMUP = 3


class StepTimer(L.Callback):
    """Stamps every training step (the first process's view; DDP steps are synchronous)."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.stamps: list[float] = []

    def setup(self, trainer, pl_module, stage):
        # Train only as many steps as are timed; the rest of the epoch would cost time only.
        trainer.limit_train_batches = self.max_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.stamps.append(time.perf_counter())


class TimeToTarget(L.Callback):
    """Wall time since ``launched_at`` (a ``time.time()``, taken before the Python process
    started) at which validation top-1 first reached ``target``, and the rate of the training
    steps (validation excluded), both as the first process sees them."""

    def __init__(self, target: float, launched_at: float):
        self.target = target
        self.launched_at = launched_at
        self.reached_s: float | None = None
        self.reached_epoch: int | None = None
        self.train_seconds = 0.0
        self.train_images = 0
        self.val_accs: list[float] = []
        self._epoch_started = 0.0

    def _now(self, pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_started = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.train_images += batch[1].numel() * trainer.world_size

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.train_seconds += self._now(pl_module) - self._epoch_started

    def on_validation_end(self, trainer, pl_module):
        acc = pl_module.epoch_summary.get("val_acc")
        if trainer.sanity_checking or acc is None:
            return
        self.val_accs.append(acc)
        if self.reached_s is None and acc >= self.target:
            self.reached_s = time.time() - self.launched_at
            self.reached_epoch = trainer.current_epoch + 1


def subset_folder(source: Path, per_class: int, dest: Path) -> Path:
    """``dest/<class>/`` with symlinks to the first ``per_class`` images of each class."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (dest / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(class_dir.iterdir())[:per_class]:
            (dest / class_dir.name / f.name).symlink_to(f.resolve())
    return dest


def train_dir(data: Path) -> Path:
    return data / "train" if (data / "train").is_dir() else data


# -- worker: one run, started by the parent (and, for DDP, re-run by Lightning's launcher) --
def worker(spec: dict) -> None:
    cfg = load_config(spec.get("config"), spec["overrides"], spec.get("sets"))
    if spec["kind"] == "processes":
        timer = StepTimer(WARMUP + spec["steps"])
        result = train(cfg, extra_callbacks=[timer])
        if result.is_global_zero:
            timed = timer.stamps[WARMUP - 1 : WARMUP + spec["steps"]]
            images = cfg.data.batch_size * result.hardware.world_size * (len(timed) - 1)
            print(
                "RESULT "
                + json.dumps(
                    {
                        "rate": images / (timed[-1] - timed[0]),
                        "threads": torch.get_num_threads(),
                        "steps": len(timed) - 1,
                    }
                ),
                flush=True,
            )
        return
    meter = TimeToTarget(spec["target"], spec["launched_at"])
    result = train(cfg, extra_callbacks=[meter])
    if result.is_global_zero:
        wall = time.time() - spec["launched_at"]
        print(
            "RESULT "
            + json.dumps(
                {
                    "train_rate": meter.train_images / max(meter.train_seconds, 1e-9),
                    "reached_s": meter.reached_s,
                    "reached_epoch": meter.reached_epoch,
                    "val_accs": meter.val_accs,
                    "best_val_acc": result.best.get("val_acc"),
                    "best_epoch": result.best_epoch,
                    "wall_s": wall,
                    "hardware": result.hardware.describe(),
                    "run_dir": str(result.run_dir),
                }
            ),
            flush=True,
        )


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SCENES_RUN_DIR", None)
    spec = {**spec, "launched_at": time.time()}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(
            f"worker failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- the two benchmarks -----------------------------------------------------------------------
def compare_processes(args) -> None:
    per_process_images = (WARMUP + args.steps) * args.batch_size
    # enough training images (90% of the subset) for every step of the largest process count
    per_class = int(per_process_images * 2 / 0.9 / 6) + 2
    # removed at exit: run folders are hundreds of MB each
    root = Path(tempfile.mkdtemp(prefix="scenes-scale-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = subset_folder(train_dir(Path(args.data)), per_class, root / "data")
    base = {
        "data.dir": str(data),
        "data.image_size": args.image_size,
        "data.batch_size": args.batch_size,
        "model.name": args.model,
        "model.pretrained": False,
        "augment.preset": "classic",
        "train.epochs": 1,
        "train.mode": "full",  # every layer trains (the default's first epoch is head-only)
        "train.accelerator": "cpu",
        "train.progress_bar": False,
    }
    print(
        f"{args.model} @ {args.image_size}px, batch {args.batch_size} per process, "
        f"{6 * per_class} images ({per_class} per class), {args.steps} timed steps, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'round':>5} {'1 process img/s':>16} {'2 processes img/s':>18} {'ratio 2/1':>10}")
    rates: dict[int, list[float]] = {1: [], 2: []}
    for i in range(args.rounds):
        row = {}
        for processes in (1, 2):
            overrides = {**base, "out": str(root / f"run-{i}-{processes}")}
            if processes > 1:
                overrides.update({"train.devices": processes, "train.strategy": "ddp"})
            spec = {"kind": "processes", "overrides": overrides, "steps": args.steps}
            row[processes] = run_worker(spec)
            rates[processes].append(row[processes]["rate"])
        one, two = row[1]["rate"], row[2]["rate"]
        print(f"{i + 1:>5} {one:>16.1f} {two:>18.1f} {two / one:>10.3f}", flush=True)
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    print(
        f"median: 1 process {statistics.median(rates[1]):.1f} img/s "
        f"({row[1]['threads']} threads), 2 processes {statistics.median(rates[2]):.1f} img/s "
        f"({row[2]['threads']} thread(s) each); ratio 2/1 median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {args.rounds} rounds)"
    )


def time_to_target(args) -> None:
    # removed at exit: run folders are hundreds of MB each
    root = Path(tempfile.mkdtemp(prefix="scenes-target-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = train_dir(Path(args.data))
    if args.limit_images:
        data = subset_folder(data, max(2, args.limit_images // 6), root / "data")
    overrides = {
        "data.dir": str(data),
        "data.cache_dir": str(root / "cache"),  # fresh: the wall time includes decoding
        "train.accelerator": args.device,
        "out": str(root / "run"),
    }
    spec = {
        "kind": "target",
        "config": args.config,
        "overrides": overrides,
        "sets": args.sets,
        "target": args.target,
    }
    result = run_worker(spec)
    reached = (
        f"{result['reached_s']:.1f} s (epoch {result['reached_epoch']})"
        if result["reached_s"] is not None
        else "not reached"
    )
    print(
        f"recipe {args.config} {' '.join(args.sets)} on {result['hardware']}, "
        f"data {data}{f' ({args.limit_images} images asked)' if args.limit_images else ''}\n"
        f"training rate {result['train_rate']:.0f} img/s (training steps, validation excluded)\n"
        f"validation top-1 per epoch: {', '.join(f'{a:.4f}' for a in result['val_accs'])}\n"
        f"time to validation top-1 >= {args.target}: {reached} from the start of the "
        f"training process (Python start-up, imports and decoding included)\n"
        f"best validation top-1 {result['best_val_acc']:.4f} (epoch {result['best_epoch']}); "
        f"whole run {result['wall_s']:.1f} s\n"
        f"run directory {result['run_dir']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cuda", "cpu"], help="time to --target on this device")
    parser.add_argument("--data", default=str(INTEL))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--config", default=str(REPO / "configs" / "mobilenet_v2_gpu.yaml"))
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--limit-images", type=int, help="a subset of N images (smoke check)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config field")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    use_offline_weights()  # sets TORCH_HOME for the workers too
    if args.device:
        time_to_target(args)
    else:
        compare_processes(args)


if __name__ == "__main__":
    main()
