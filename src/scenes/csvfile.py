"""CSV files that people open in spreadsheets: text cells that cannot become formulas.

A cell beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is a formula
to Excel, LibreOffice and Google Sheets, and a class name or file name is text that anyone
chose. Such cells are written with a leading ``'`` (which spreadsheets show as plain text);
``restore`` takes it off again for the files scenes reads back. A cell that itself begins with
``'`` gets one more, so every text reads back exactly. Numbers are left as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPED_STARTS = (*FORMULA_STARTS, "'")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(ESCAPED_STARTS):
        return "'" + value
    return value


def restore(text: str) -> str:
    """A cell as it was before ``neutralise``."""
    if text.startswith("'") and text[1:2] and text[1] in ESCAPED_STARTS:
        return text[1:]
    return text


class SafeWriter:
    """``csv.writer`` whose text cells cannot be read as formulas."""

    def __init__(self, fh: IO[str]):
        self._writer = csv.writer(fh)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
