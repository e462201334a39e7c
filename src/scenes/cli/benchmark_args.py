"""The options of ``scenes benchmark``: every format of a model measured on labelled images."""

from __future__ import annotations

from ..choices import BACKENDS, INFERENCE_BATCH
from .common import add_batch_size, add_labelled_source, add_run
from .types import positive


def add_benchmark_parser(sub, common) -> None:
    p = sub.add_parser(
        "benchmark",
        help="measure every export format on your labelled images: size, accuracy, speed",
        description="For each format (PyTorch, ONNX fp32 and int8, TorchScript, OpenVINO fp32 "
        "and int8): file size, top-1 and macro F1 on the images, agreement with PyTorch, "
        "single-image latency p50/p95 and predict_many throughput, in alternated rounds with "
        "ratios to PyTorch. Writes RUN_DIR/benchmark/benchmark.csv and benchmark.png.",
    )
    common(p)
    add_run(p)
    add_labelled_source(p)
    p.add_argument(
        "--formats",
        nargs="+",
        choices=BACKENDS,
        default=list(BACKENDS),
        metavar="FORMAT",
        help=f"the formats to measure, PyTorch always among them ({', '.join(BACKENDS)}; "
        "default: all; those whose runtime is not installed are listed as skipped)",
    )
    p.add_argument(
        "--rounds",
        type=positive,
        default=5,
        metavar="N",
        help="alternated timing rounds, at least 5 (default: 5)",
    )
    p.add_argument(
        "--calls",
        type=positive,
        default=20,
        metavar="N",
        help="single-image predictions per format and round (default: 20)",
    )
    p.add_argument(
        "--images",
        type=positive,
        default=200,
        metavar="N",
        help="images per format and round for the throughput (default: 200)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="where every format runs: cpu, or cuda for those that can (default: cpu)",
    )
    add_batch_size(p, INFERENCE_BATCH)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="the folder for benchmark.csv and benchmark.png (default: RUN_DIR/benchmark)",
    )
    p.set_defaults(target=".evaluation.benchmark_outputs:run_benchmark")
