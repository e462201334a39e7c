"""The list of photos to label next, as ``scenes data select`` writes it and ``scenes review
--queue uncertain`` reads it: one CSV, ``COLUMNS`` exactly, one row per photo in the order to
label them (rank 1 first).

``score`` is the strategy's measure: the entropy for ``entropy``, otherwise the top-1 minus
top-2 margin (for ``diverse`` the margin of each pick, for ``random`` the margin too, so every
row has a number). ``label_1``/``prob_1`` and ``label_2``/``prob_2`` are the model's two most
likely classes with the probabilities ``scenes predict`` gives. Written through
``scenes.atomic``, so a reader never sees half a list.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

from .atomic import replacing
from .csvfile import SafeWriter, restore
from .errors import DataError, MissingPathError

__all__ = ["COLUMNS", "SelectionRow", "read_selection", "write_selection"]

COLUMNS = ("rank", "path", "score", "strategy", "label_1", "prob_1", "label_2", "prob_2")


@dataclass(frozen=True)
class SelectionRow:
    rank: int
    path: Path
    score: float
    strategy: str
    label_1: str
    prob_1: float
    label_2: str
    prob_2: float


def write_selection(path: str | Path, rows: Iterable[SelectionRow]) -> Path:
    """The rows, in the order given, replacing ``path`` in one step."""
    with replacing(path, "w") as fh:
        writer = SafeWriter(fh)
        writer.writerow(COLUMNS)
        for row in rows:
            cells = list(astuple(row))
            cells[1] = str(cells[1])
            writer.writerow(cells)
    return Path(path)


def _number(text: str, where: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise DataError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: expected a finite number, got {text!r}")
    return value


def read_selection(path: str | Path) -> list[SelectionRow]:
    """The rows of a selection file, in rank order; a missing file, other columns or a cell
    that is not a number where one belongs is an error naming the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path} not found: `scenes data select ... --out {path}` writes it")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != COLUMNS:
            raise DataError(
                f"{path}: columns {','.join(header) or '(none)'}; a selection file has "
                f"{','.join(COLUMNS)} (written by `scenes data select`)"
            )
        rows = []
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(COLUMNS):
                raise DataError(f"{path}, line {line}: {len(cells)} cells, expected {len(COLUMNS)}")
            at = {name: f"{path}, line {line}, column {name}" for name in COLUMNS}
            rows.append(
                SelectionRow(
                    rank=int(_number(cells[0], at["rank"], int)),
                    path=Path(restore(cells[1])),
                    score=float(_number(cells[2], at["score"], float)),
                    strategy=restore(cells[3]),
                    label_1=restore(cells[4]),
                    prob_1=float(_number(cells[5], at["prob_1"], float)),
                    label_2=restore(cells[6]),
                    prob_2=float(_number(cells[7], at["prob_2"], float)),
                )
            )
    return sorted(rows, key=lambda row: row.rank)
