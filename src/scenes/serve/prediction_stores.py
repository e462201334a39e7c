"""The two ways ``scenes predict --engine ray`` stores its rows, behind one interface that
``PredictionSink`` drives: a CSV (``preds.csv``, rows appended and fsync'd as they come, the
sidecar ``<out>.scenes.json`` beside it) and Parquet (``preds.parquet/``, a folder of parts,
each written whole and renamed into place, its sidecar ``_scenes.json`` inside; pandas,
pyarrow, Spark and DuckDB read the folder as one table).

Each store knows how to start itself with its sidecar, read back (path, digest, error) of
every row in the order written, append rows, and rewrite itself with some rows swapped for
new ones, each rewrite of a file in one rename.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ..atomic import replacing, replacing_folder, replacing_path, write_text
from ..csvfile import SafeWriter, neutralise, restore

# Always text; in Parquet an empty cell of any other column is null (no label, no error).
ALWAYS_TEXT = ("path", "digest")
PART = re.compile(r"part-(\d+)\.parquet")

Earlier = list[tuple[str, str, str]]  # (path, digest, error) of each row, in written order


def is_parquet(out: str | Path) -> bool:
    return str(out).lower().rstrip("/").endswith(".parquet")


def open_store(out: str | Path, columns: list[str]) -> CsvStore | ParquetStore:
    return (ParquetStore if is_parquet(out) else CsvStore)(Path(out), columns)


class CsvStore:
    def __init__(self, out: Path, columns: list[str]):
        self.out, self.columns = out, columns
        self.sidecar = Path(f"{out}.scenes.json")

    def start(self, sidecar: str) -> None:
        write_text(self.sidecar, sidecar)

    def read(self) -> Earlier:
        self._drop_torn_line()
        if not self.out.is_file():
            return []
        with self.out.open(newline="") as fh:
            return [(restore(r["path"]), r["digest"], r["error"]) for r in csv.DictReader(fh)]

    def _drop_torn_line(self) -> None:
        """A CSV cut by a kill can end mid-row: that row is dropped (and predicted again)."""
        if not self.out.is_file() or self.out.stat().st_size == 0:
            return
        data = self.out.read_bytes()
        if not data.endswith(b"\n"):
            os.truncate(self.out, data.rfind(b"\n") + 1)

    def append(self, rows: list[list]) -> None:
        new = not self.out.is_file() or self.out.stat().st_size == 0
        with self.out.open("a", newline="") as fh:
            writer = SafeWriter(fh)
            if new:
                writer.writerow(self.columns)
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite(self, held_back: dict[str, list]) -> None:
        """The file again in one rename: each path's last row only, swapped for its held-back
        row where there is one."""
        with self.out.open(newline="") as fh:
            header, *body = list(csv.reader(fh))
        path_i = header.index("path")
        paths = [restore(r[path_i]) for r in body]
        last = {path: i for i, path in enumerate(paths)}
        kept = [
            [neutralise(c) for c in held_back[path]] if path in held_back else row
            for i, (path, row) in enumerate(zip(paths, body))
            if last[path] == i
        ]
        with replacing(self.out) as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(kept)


def column_type(name: str):
    import pyarrow as pa

    if name == "accepted":
        return pa.bool_()
    if name.startswith("prob_") or name == "unknown_score":
        return pa.float64()
    return pa.string()


def numbered_parts(folder: Path) -> list[tuple[int, Path]]:
    """A Parquet folder's parts with their numbers, in the order they were written."""
    found = ((PART.fullmatch(p.name), p) for p in folder.glob("part-*.parquet"))
    return sorted((int(match.group(1)), p) for match, p in found if match)


class ParquetStore:
    def __init__(self, out: Path, columns: list[str]):
        self.out, self.columns = out, columns
        self.sidecar = out / "_scenes.json"
        # A new part takes the number after the highest one there: it never overwrites one.
        self._next_part = 1 + max((n for n, _ in self._parts()), default=-1)

    def _parts(self) -> list[tuple[int, Path]]:
        return numbered_parts(self.out)

    def start(self, sidecar: str) -> None:
        with replacing_folder(self.out) as folder:  # never a folder without its _scenes.json
            write_text(folder / self.sidecar.name, sidecar, durable=False)

    def read(self) -> Earlier:
        import pyarrow.parquet as pq

        rows = []
        for _, part in self._parts():
            table = pq.read_table(part, columns=["path", "digest", "error"]).to_pydict()
            rows += zip(table["path"], table["digest"], table["error"])
        return rows

    def table(self, rows: list[list]):
        import pyarrow as pa

        data = {
            name: [None if (v == "" and name not in ALWAYS_TEXT) else v for v in values]
            for name, values in zip(self.columns, zip(*rows))
        }
        schema = pa.schema([(name, column_type(name)) for name in self.columns])
        return pa.Table.from_pydict(data, schema=schema)

    def append(self, rows: list[list]) -> None:
        import pyarrow.parquet as pq

        with replacing_path(self.out / f"part-{self._next_part:05d}.parquet") as tmp:
            pq.write_table(self.table(rows), tmp)
        self._next_part += 1

    def rewrite(self, held_back: dict[str, list]) -> None:
        """Each part rewritten in one rename, its old rows swapped for their new ones there
        (and rows that a later one of the same path replaces dropped)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        found = [part for _, part in self._parts()]
        columns = [pq.read_table(p, columns=["path"]).column("path").to_pylist() for p in found]
        last = {path: (k, i) for k, paths in enumerate(columns) for i, path in enumerate(paths)}
        for k, (part, paths) in enumerate(zip(found, columns)):
            final = [last[path] == (k, i) for i, path in enumerate(paths)]
            new = [held_back[p] for p, f in zip(paths, final) if f and p in held_back]
            if all(final) and not new:
                continue
            keep = [f and p not in held_back for p, f in zip(paths, final)]
            table = pq.read_table(part).filter(pa.array(keep))
            if new:
                table = pa.concat_tables([table, self.table(new)])
            with replacing_path(part) as tmp:
                pq.write_table(table, tmp)
