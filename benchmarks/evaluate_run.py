"""Evaluate a trained run on its validation split (or a held-out labelled folder).

    python benchmarks/evaluate_run.py --run runs/mobilenet_v2-cpu            # validation split
    python benchmarks/evaluate_run.py --run RUN --data path/to/seg_test      # a test folder
    python benchmarks/evaluate_run.py --run RUN --tta

Prints top-1 accuracy and macro F1 (torchmetrics, true multiclass numbers), the number of
images, and the throughput, then writes the usual evaluation files (see `scenes evaluate`).
"""

from __future__ import annotations

import argparse
import sys
import time

from scenes.evaluation.loop import evaluate
from scenes.evaluation.outputs import format_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run directory (or its model/ bundle)")
    parser.add_argument("--data", help="labelled folder; default: the run's validation split")
    parser.add_argument("--tta", action="store_true", help="average with the flipped image")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="output folder (default: RUN/eval/<name>)")
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    result = evaluate(
        args.run,
        data=args.data,
        split=None if args.data else "val",
        tta=args.tta,
        out=args.out,
        batch_size=args.batch_size,
    )
    seconds = time.perf_counter() - started
    if not args.quiet:
        print(format_result(result), end="\n\n")
    print(
        f"top-1 {result.accuracy:.4f}  macro F1 {result.macro_f1:.4f}  "
        f"on {result.num_images} images ({len(result.skipped)} skipped) of {result.source}"
        f"{'  [TTA]' if result.tta else ''}  in {seconds:.1f}s "
        f"({result.num_images / seconds:.0f} img/s incl. decoding and writing)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
