"""``scenes predict``: the files to classify, and the table or CSV of their top-k classes.

The answers come from ``Predictor`` (``inference.py``), the same as every other command's.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from .data.files import list_files
from .inference import Prediction, PredictionRow, Predictor, Source

__all__ = [
    "Prediction",
    "PredictionRow",
    "Predictor",
    "Source",
    "collect_images",
    "format_table",
    "write_csv",
]


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
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def write_csv(rows: list[PredictionRow], out: str | Path, top_k: int) -> None:
    header = ["path"]
    for k in range(1, top_k + 1):
        header += [f"label_{k}", f"prob_{k}"]
    header.append("error")
    with Path(out).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            cells: list[object] = [row.source]
            for k in range(top_k):
                cells += list(row.top[k]) if k < len(row.top) else ["", ""]
            writer.writerow([*cells, row.error or ""])


def format_table(rows: list[PredictionRow]) -> str:
    width = max([len(r.source) for r in rows] + [4])
    lines = [f"{'path':<{width}}  prediction"]
    for r in rows:
        text = r.error and f"ERROR {r.error}" or "  ".join(f"{lab} {p:.3f}" for lab, p in r.top)
        lines.append(f"{r.source:<{width}}  {text}")
    return "\n".join(lines)


def run_predict(
    run: str,
    paths: list[str],
    top_k: int = 3,
    out: str | None = None,
    backend: str = "torch",
    batch_size: int = 32,
    device: str = "auto",
) -> int:
    if top_k < 1:
        raise ValueError("--top-k must be at least 1")
    files = collect_images(paths)
    if not files:
        raise FileNotFoundError(f"no image files in {', '.join(paths)}")
    predictor = Predictor.load(run, backend=backend, device=device)
    top_k = min(top_k, len(predictor.class_names))
    rows = predictor.predict_many(
        files, top_k, batch_size, progress=sys.stderr.isatty() or len(files) > 100
    )
    failed = sum(r.error is not None for r in rows)
    if out:
        write_csv(rows, out, top_k)
        print(
            f"wrote {len(rows)} predictions to {out}"
            + (f" ({failed} unreadable)" if failed else "")
        )
    else:
        print(format_table(rows))
    return 0
