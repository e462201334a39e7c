"""``scenes benchmark``: every format of a bundle measured on the user's own labelled images.

Per format (PyTorch fp32 is the baseline): the file's size; top-1 and macro F1 on the images
(mean average precision and macro F1 for a multi-label model), computed as ``evaluate`` does;
the share of images whose top class equals PyTorch's and the largest probability difference;
single-image latency (``Predictor.predict``: decoding included, warm) and ``predict_many``
throughput. Latency and throughput are measured in rounds: each round times every format in
turn on the same photos, starting from a different format each round, and a format's ratio to
PyTorch is taken per round, so a busy moment of a shared machine hits both sides of a ratio;
the median ratio and its range over the rounds are reported.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..choices import BACKENDS, INFERENCE_BATCH
from ..console import stage
from ..errors import UsageError
from ..models.bundle import WEIGHTS_FILE, bundle_run_dir, resolve_bundle_dir
from ..serve.predictor import Predictor
from .loop import evaluate
from .sources import evaluation_files

BASELINE = "torch"


@dataclass
class FormatResult:
    format: str
    skipped: str = ""  # why it was not measured (a runtime not installed, ...)
    size_mb: float = math.nan
    accuracy: float = math.nan  # top-1; multi-label: mean average precision
    macro_f1: float = math.nan
    same_top1: float = math.nan  # share of images whose top class is PyTorch's
    max_prob_diff: float = math.nan  # largest |probability - PyTorch's|
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p50_ratio: float = math.nan  # to PyTorch's, median over rounds
    p50_ratio_min: float = math.nan
    p50_ratio_max: float = math.nan
    images_per_s: float = math.nan
    throughput_ratio: float = math.nan
    throughput_ratio_min: float = math.nan
    throughput_ratio_max: float = math.nan

    def row(self) -> dict:
        return asdict(self)


def file_size_mb(directory: Path, fmt: str) -> float:
    from ..serve.formats import FORMATS

    path = directory / (WEIGHTS_FILE if fmt == BASELINE else FORMATS[fmt].file)
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


def load_formats(run: str | Path, formats: list[str], device: str) -> dict:
    """{format: Predictor or the reason it was skipped}; each exported first when needed."""
    from ..serve.formats import get_format

    loaded: dict[str, Predictor | str] = {}
    with stage("loading (and exporting) the formats", len(formats), unit="format") as bar:
        for fmt in formats:
            missing = None if fmt == BASELINE else get_format(fmt).missing()
            try:
                loaded[fmt] = missing or Predictor.load(run, backend=fmt, device=device)
            except UsageError as exc:  # e.g. int8 with no split.csv to calibrate on
                loaded[fmt] = str(exc)
            bar.update(1)
    return loaded


def _latencies_ms(call, photos: list[Path]) -> list[float]:
    times = []
    for photo in photos:
        start = time.perf_counter()
        call(photo)
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure_speed(models: dict[str, Predictor], photos, images, rounds: int, batch: int):
    """Per format: all single-image latencies (ms), and per round the latency median and the
    throughput (images/s)."""
    names = list(models)
    latencies = {n: [] for n in names}
    medians = {n: [] for n in names}
    throughput = {n: [] for n in names}
    for model in models.values():  # warm-up: first calls allocate and compile
        _latencies_ms(model.predict, photos[:3])
    with stage("timing", rounds * len(names), unit="format-round") as bar:
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                model = models[name]
                times = _latencies_ms(model.predict, photos)
                latencies[name] += times
                medians[name].append(statistics.median(times))
                start = time.perf_counter()
                model.predict_many(images, top_k=1, batch_size=batch)
                throughput[name].append(len(images) / (time.perf_counter() - start))
                bar.update(1)
    return latencies, medians, throughput


def benchmark(
    run: str | Path,
    data: str | Path | None = None,
    labels_csv: str | Path | None = None,
    split: str | None = None,
    formats: list[str] | None = None,
    rounds: int = 5,
    calls: int = 20,
    images: int = 200,
    device: str = "cpu",
    batch_size: int = INFERENCE_BATCH,
) -> list[FormatResult]:
    if rounds < 5:
        raise UsageError(f"--rounds {rounds}: at least 5 alternated rounds make a ratio")
    formats = [BASELINE, *[f for f in (formats or BACKENDS) if f != BASELINE]]
    unknown = [f for f in formats if f not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown format {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    directory = resolve_bundle_dir(run)
    loaded = load_formats(run, formats, device)
    models = {f: m for f, m in loaded.items() if isinstance(m, Predictor)}
    paths, _, _, _ = evaluation_files(
        models[BASELINE], bundle_run_dir(run), data, labels_csv, split
    )
    results = {f: FormatResult(f, skipped=m) for f, m in loaded.items() if isinstance(m, str)}
    answers = {}
    for fmt in models:
        found = evaluate(
            run, data, out=False, split=split, device=device, backend=fmt, labels_csv=labels_csv
        )
        multilabel = hasattr(found, "map")
        answers[fmt] = found.probs
        results[fmt] = FormatResult(
            fmt,
            size_mb=file_size_mb(directory, fmt),
            accuracy=found.map if multilabel else found.accuracy,
            macro_f1=found.macro_f1,
        )
    for fmt, result in results.items():
        if fmt in answers:
            base, probs = answers[BASELINE], answers[fmt]
            result.same_top1 = float(np.mean(probs.argmax(1) == base.argmax(1)))
            result.max_prob_diff = float(np.abs(probs - base).max())
    photos = [paths[i % len(paths)] for i in range(calls)]
    latencies, medians, throughput = measure_speed(
        models, photos, [paths[i % len(paths)] for i in range(images)], rounds, batch_size
    )
    for fmt in models:
        r = results[fmt]
        ordered = sorted(latencies[fmt])
        r.p50_ms = statistics.median(ordered)
        r.p95_ms = ordered[int(0.95 * (len(ordered) - 1))]
        ratios = [a / b for a, b in zip(medians[fmt], medians[BASELINE])]
        r.p50_ratio, r.p50_ratio_min, r.p50_ratio_max = _spread(ratios)
        r.images_per_s = statistics.median(throughput[fmt])
        ratios = [a / b for a, b in zip(throughput[fmt], throughput[BASELINE])]
        r.throughput_ratio, r.throughput_ratio_min, r.throughput_ratio_max = _spread(ratios)
    return [results[f] for f in formats]


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)
