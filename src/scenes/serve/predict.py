"""``scenes predict``: the files to classify, and the table or CSV of their top-k classes.

The answers come from ``Predictor`` (``inference.py``), the same as every other command's.
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
from ..errors import MissingPathError
from ..outputs import output_file
from .answers import PredictionRow
from .predictor import Predictor

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


def csv_header(top_k: int) -> list[str]:
    header = ["path"]
    for k in range(1, top_k + 1):
        header += [f"label_{k}", f"prob_{k}"]
    return [*header, "error"]


def csv_cells(row: PredictionRow, top_k: int) -> list[object]:
    cells: list[object] = [row.source]
    for k in range(top_k):
        cells += list(row.top[k]) if k < len(row.top) else ["", ""]
    return [*cells, row.error or ""]


def write_csv(rows: Iterable[PredictionRow], out: str | Path | IO[str], top_k: int) -> int:
    """Rows to ``out`` (a path, or an open text file), each flushed as it comes; their count."""
    with _opened(out) as fh:
        writer = SafeWriter(fh)
        writer.writerow(csv_header(top_k))
        count = 0
        for row in rows:
            writer.writerow(csv_cells(row, top_k))
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
    text = row.error and f"ERROR {row.error}" or "  ".join(f"{lab} {p:.3f}" for lab, p in row.top)
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
) -> int:
    if out == STDOUT:
        console.data_on_stdout()
    elif out is not None:
        output_file(out, example="preds.csv")
    files = collect_images(paths)
    if not files:
        raise MissingPathError(f"no image files in {', '.join(paths)}")
    predictor = Predictor.load(run, backend=backend, device=device)
    top_k = min(top_k, len(predictor.class_names))
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
        count = write_csv(rows, sys.stdout if out == STDOUT else out, top_k)
        summary = f"wrote {plural(count, 'prediction')} to {'stdout' if out == STDOUT else out}"
    summary += f"; {len(failed)} could not be read (see their error)" if failed else ""
    print(summary, file=sys.stderr if out == STDOUT else sys.stdout)
    return 1 if failed else 0
