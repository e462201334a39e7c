"""``scenes predict``: the files to classify, and the table or CSV of their top-k classes.

The answers come from ``Predictor`` (``predictor.py``), the same as every other command's.
Rows are written as they are computed, so an interrupted run keeps what it finished. The exit
code is 1 when any file could not be read (its row says why), as ``data check`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .. import console
from ..choices import INFERENCE_BATCH
from ..console import plural
from ..csvfile import SafeWriter
from ..data.files import list_files
from ..errors import MissingPathError, UsageError
from ..models.meta import BundleMeta
from ..outputs import output_file
from .answers import PredictionRow, label_columns
from .csv_rows import csv_cells, csv_header
from .predictor import Predictor
from .ray_jobs import engine_from_options

__all__ = ["collect_images", "format_table", "run_predict", "write_csv"]

STDOUT = "-"


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given (even odd ones: they get an error row), folders searched recursively
    for image files (hidden ones left out, as everywhere: ``data.files.list_files``)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(list_files(path))
        elif path.exists():
            found.append(path)
        else:
            raise MissingPathError(f"no such file or folder: {path}")
    return found


UNKNOWN = "none of the known classes"


def write_csv(
    rows: Iterable[PredictionRow],
    out: str | Path | IO[str],
    meta: BundleMeta,
    top_k: int,
    accepting: bool = False,
) -> int:
    """Rows to ``out`` (a path, or an open text file), each flushed as it comes; their count."""
    with _opened(out) as fh:
        writer = SafeWriter(fh)
        writer.writerow(csv_header(meta, top_k, accepting))
        count = 0
        for row in rows:
            writer.writerow(csv_cells(row, meta, top_k, accepting))
            fh.flush()
            count += 1
    return count


@contextmanager
def _opened(out: str | Path | IO[str]) -> Iterator[IO[str]]:
    if hasattr(out, "write"):
        yield out  # type: ignore[misc]
        return
    with Path(out).open("w", newline="") as fh:  # type: ignore[arg-type]
        yield fh


def table_line(row: PredictionRow, width: int) -> str:
    if row.error:
        return f"{row.source:<{width}}  ERROR {row.error}"
    text = "  ".join(f"{lab} {p:.3f}" for lab, p in row.top)
    if row.top.labels is not None:
        text = f"[{' '.join(row.top.labels) or 'no label'}]  {text}"
    if row.top.accepted is False:
        text = f"{UNKNOWN} (score {row.top.score:.3f}); as a guess: {text}"
    return f"{row.source:<{width}}  {text}"


def format_table(rows: list[PredictionRow]) -> str:
    width = max([len(r.source) for r in rows] + [4])
    return "\n".join([f"{'path':<{width}}  prediction", *(table_line(r, width) for r in rows)])


def run_predict(
    run: str,
    paths: list[str],
    top_k: int = 3,
    out: str | None = None,
    backend: str = "torch",
    batch_size: int = INFERENCE_BATCH,
    device: str = "auto",
    tta: bool = False,
    accept_all: bool = False,
    compile: bool = False,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
) -> int:
    """The files of ``paths`` classified here or on Ray; exit 1 when any could not be read."""
    ray_predict = engine_from_options(engine, address, workers, gpus_per_worker)
    _check_output(out, ray_predict is not None, compile)
    files = collect_images(paths)
    if not files:
        raise MissingPathError(f"no image files in {', '.join(paths)}")
    if ray_predict is not None:
        from .ray_predict import predict_with_ray

        options = (top_k, backend, batch_size, device, tta, accept_all, ray_predict)
        written, skipped, failed = predict_with_ray(run, files, out, *options)
        said = [f"wrote {plural(written, 'prediction')} to {out}"]
        if skipped:
            said.append(f"{plural(skipped, 'file')} already there (same path and content)")
        if failed:
            said.append(f"{failed} could not be read (see their error)")
        print("; ".join(said))
        return 1 if failed else 0
    predictor = Predictor.load(
        run, backend=backend, device=device, accept_all=accept_all, compile=compile
    )
    return _predict_here(predictor, files, top_k, out, batch_size, tta)


def _check_output(out: str | None, on_ray: bool, compile: bool) -> None:
    """Refuse what cannot work before any decoding: Ray writes a file it can resume."""
    if on_ray:
        if out is None or out == STDOUT:
            raise UsageError(
                "--engine ray writes a file it can resume: give --out preds.parquet (or .csv)"
            )
        if compile:
            raise UsageError("--compile is for --engine local (each Ray worker would compile)")
    if out == STDOUT:
        console.data_on_stdout()
    elif out is not None and not on_ray:
        output_file(out, example="preds.csv")


def _predict_here(
    predictor: Predictor,
    files: list[Path],
    top_k: int,
    out: str | None,
    batch_size: int,
    tta: bool,
) -> int:
    """The local engine: rows as they are computed, to the console, a CSV or stdout."""
    top_k = label_columns(top_k, predictor.class_names)
    failed = []

    def counted(rows: Iterable[PredictionRow]) -> Iterator[PredictionRow]:
        for row in rows:
            if row.error is not None:
                failed.append(row.source)
            yield row

    rows = counted(predictor.iter_predictions(files, top_k, batch_size, progress=True, tta=tta))
    if out is None:
        width = max([len(str(f)) for f in files] + [4])
        print(f"{'path':<{width}}  prediction")
        for row in rows:
            print(table_line(row, width), flush=True)
        summary = f"{plural(len(files), 'file')} predicted"
    else:
        target = sys.stdout if out == STDOUT else out
        accepting = predictor.reference is not None
        count = write_csv(rows, target, predictor.meta, top_k, accepting)
        summary = f"wrote {plural(count, 'prediction')} to {'stdout' if out == STDOUT else out}"
    summary += f"; {len(failed)} could not be read (see their error)" if failed else ""
    print(summary, file=sys.stderr if out == STDOUT else sys.stdout)
    return 1 if failed else 0
