"""What ``scenes benchmark`` prints and writes: the table, ``benchmark.csv`` and the figure of
accuracy against latency (``RUN/benchmark/`` by default)."""

from __future__ import annotations

import math
from pathlib import Path

from .. import plots
from ..atomic import replacing
from ..choices import INFERENCE_BATCH
from ..csvfile import SafeWriter
from ..models.bundle import bundle_run_dir, read_meta
from ..outputs import output_dir
from .benchmark import FormatResult, benchmark

BENCHMARK_CSV = "benchmark.csv"
BENCHMARK_PNG = "benchmark.png"


def _cell(value: float, spec: str) -> str:
    return "–" if math.isnan(value) else format(value, spec)


def format_table(results: list[FormatResult], multilabel: bool = False) -> str:
    score = "mAP" if multilabel else "top-1"
    header = (
        f"| format | size MB | {score} | macro F1 | same top-1 | max Δp | p50 ms | p95 ms "
        "| p50 / torch (range) | img/s | img/s / torch (range) |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.format} | skipped: {r.skipped} |" + " |" * 9)
            continue
        lines.append(
            f"| {r.format} | {_cell(r.size_mb, '.1f')} | {_cell(r.accuracy, '.4f')} "
            f"| {_cell(r.macro_f1, '.4f')} | {_cell(r.same_top1, '.2%')} "
            f"| {_cell(r.max_prob_diff, '.1e')} | {_cell(r.p50_ms, '.1f')} "
            f"| {_cell(r.p95_ms, '.1f')} | {_cell(r.p50_ratio, '.3f')} "
            f"({_cell(r.p50_ratio_min, '.3f')}–{_cell(r.p50_ratio_max, '.3f')}) "
            f"| {_cell(r.images_per_s, '.0f')} | {_cell(r.throughput_ratio, '.3f')} "
            f"({_cell(r.throughput_ratio_min, '.3f')}–{_cell(r.throughput_ratio_max, '.3f')}) |"
        )
    return "\n".join(lines)


def write_outputs(results: list[FormatResult], out: Path, score: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    table = out / BENCHMARK_CSV
    rows = [r.row() for r in results]
    with replacing(table) as fh:
        writer = SafeWriter(fh)
        writer.writerow(list(rows[0]))
        for row in rows:
            writer.writerow(list(row.values()))
    measured = [r for r in results if not r.skipped]
    figure = plots.plot_benchmark(
        [r.format for r in measured],
        [r.p50_ms for r in measured],
        [r.accuracy for r in measured],
        score,
        out / BENCHMARK_PNG,
    )
    return table, figure


def run_benchmark(
    run: str,
    data: str | None = None,
    labels: str | None = None,
    split: str | None = None,
    formats: list[str] | None = None,
    rounds: int = 5,
    calls: int = 20,
    images: int = 200,
    device: str = "cpu",
    batch_size: int = INFERENCE_BATCH,
    out: str | None = None,
) -> int:
    target = output_dir(out) if out else bundle_run_dir(run) / "benchmark"
    results = benchmark(
        run, data, labels, split, formats, rounds, calls, images, device, batch_size
    )
    multilabel = read_meta(run).task == "multilabel"
    print(format_table(results, multilabel))
    table, figure = write_outputs(results, target, "mAP" if multilabel else "top-1")
    print(f"wrote {table} and {figure}")
    return 0
