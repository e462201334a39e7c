"""Does `torch.compile` pay on these CPU cores? Serving and training, eager against compiled.

    python benchmarks/compile.py [--models mobilenet_v2 timm:tf_efficientnet_lite0]
                                 [--rounds 5] [--calls 40] [--steps 6] [--parts serve train]

serve: `Predictor.predict` on real photos of ../shared/data/intel/pred (decode, preprocess,
forward), the bundle's network eager and the same network through `torch.compile`, in
--rounds alternated blocks of --calls calls; the compiled/eager ratio of the block medians
(median and range). The compile time (first call, less an eager first call) separately.

train: one optimizer step (forward, backward, AdamW) on a batch of 32 at 160 px, eager and
compiled, alternated the same way in blocks of --steps steps.

Weights are random: speed does not depend on their values. A ratio below 0.9 (a gain of at
least 10%) is what `train.compile`/`serve` would need to adopt it on a CPU.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scenes.models import build_model, save_bundle
from scenes.models.meta import BundleMeta
from scenes.serve.predictor import Predictor

from _common import INTEL, median_range

CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]


def alternate(sides: dict, rounds: int) -> tuple[dict[str, list[float]], list[float]]:
    """Each side's block in turn (the order swapped every round); per side the block medians
    (ms), and per round compiled/eager."""
    medians = {name: [] for name in sides}
    for r in range(rounds):
        names = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in names:
            medians[name].append(statistics.median(sides[name]()))
    ratios = [c / e for c, e in zip(medians["compiled"], medians["eager"])]
    return medians, ratios


def first_call_s(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bench_serve(name: str, size: int, photos: list[Path], args, root: Path) -> None:
    built = build_model(name, len(CLASSES), pretrained=False)
    bundle = root / name.replace(":", "_")
    save_bundle(built.module.eval(), BundleMeta.of(built, CLASSES, size), bundle / "model")
    eager = Predictor.load(bundle, device="cpu")
    compiled = Predictor.load(bundle, device="cpu")
    compiled.runner.module = torch.compile(compiled.runner.module)
    eager_first = first_call_s(lambda: eager.predict(photos[0]))
    compile_s = first_call_s(lambda: compiled.predict(photos[0])) - eager_first

    def block(model):
        def run():
            times = []
            for photo in photos[: args.calls]:
                start = time.perf_counter()
                model.predict(photo)
                times.append((time.perf_counter() - start) * 1000)
            return times

        return run

    medians, ratios = alternate({"eager": block(eager), "compiled": block(compiled)}, args.rounds)
    print(
        f"| serve | {name} | {size} | {compile_s:.0f} s | "
        f"{statistics.median(medians['eager']):.1f} | "
        f"{statistics.median(medians['compiled']):.1f} | {median_range(ratios)} |",
        flush=True,
    )


def bench_train(name: str, size: int, args) -> None:
    torch.manual_seed(0)
    base = build_model(name, len(CLASSES), pretrained=False).module
    x = torch.randn(32, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(CLASSES), (32,))

    def stepper(module):
        module = module.to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(x), y).backward()
            optimizer.step()

        return step

    eager_step = stepper(copy.deepcopy(base))
    compiled_step = stepper(torch.compile(copy.deepcopy(base)))
    eager_first = first_call_s(eager_step)
    compile_s = first_call_s(compiled_step) - eager_first

    def block(step):
        def run():
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append((time.perf_counter() - start) * 1000)
            return times

        return run

    medians, ratios = alternate(
        {"eager": block(eager_step), "compiled": block(compiled_step)}, args.rounds
    )
    print(
        f"| train step, batch 32 | {name} | {size} | {compile_s:.0f} s | "
        f"{statistics.median(medians['eager']):.0f} | "
        f"{statistics.median(medians['compiled']):.0f} | {median_range(ratios)} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["mobilenet_v2", "timm:tf_efficientnet_lite0"]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--serve-size", type=int, default=150)
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--parts", nargs="+", default=["serve", "train"])
    args = parser.parse_args()
    if args.rounds < 5:
        raise SystemExit("--rounds: at least 5 alternated rounds make a ratio")
    photos = sorted((INTEL / "pred").glob("*.jpg"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| what | model | px | compile time | eager ms | compiled ms | compiled / eager |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if "serve" in args.parts:
                bench_serve(name, args.serve_size, photos, args, Path(tmp))
            if "train" in args.parts:
                bench_train(name, args.train_size, args)


if __name__ == "__main__":
    main()
