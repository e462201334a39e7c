"""Where ``scenes predict --engine ray`` writes, so that a rerun picks up where it stopped.

Two formats, the columns of ``predict``'s CSV plus ``digest`` (the SHA-256 of the file's
bytes): a CSV (``preds.csv``, rows appended and flushed as they come), or Parquet
(``preds.parquet/``, a folder of parts, each written whole and renamed into place; pandas,
pyarrow, Spark and DuckDB read the folder as one table). Beside it, ``_scenes.json`` (inside
the Parquet folder, ``<out>.scenes.json`` for a CSV) says which bundle and columns wrote it: a
rerun with another model or top-k is refused rather than mixed in.

Each file is there at most once whenever a job is killed, and exactly once when a run ends:

- a rerun skips every file whose path and digest are already written without an error; a
  file whose row is an error is read again (and counted again as failed);
- a row for a file that already has one (its content changed, or it failed before) is held
  back, and ``finish`` swaps it in for the old row: in one rename for a CSV, in one rename
  per part for Parquet (the new row goes into the old row's part). A kill before that keeps
  the old row, and the rerun predicts the file again;
- rows are read back last one wins, and ``finish`` drops the others (an older scenes could
  leave a file twice);
- a new part takes the number after the highest one there, so it never overwrites a part;
- a lock file beside ``--out`` (``.<name>.lock``, released by the OS when the job dies, so
  a killed job never blocks the next) refuses a second job on the same ``--out``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

from ..atomic import replacing, replacing_folder, replacing_path, write_text
from ..csvfile import SafeWriter, neutralise, restore
from ..errors import UsageError

# Always text; in Parquet an empty cell of any other column is null (no label, no error).
ALWAYS_TEXT = ("path", "digest")
PART = re.compile(r"part-(\d+)\.parquet")


def is_parquet(out: str | Path) -> bool:
    return str(out).lower().rstrip("/").endswith(".parquet")


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


def lock_file(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def hold_lock(out: Path) -> FileLock:
    """``out``'s lock, held until ``release``; another job holding it is a UsageError."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file(out), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(
            f"--out {out} is being written by another `scenes predict --engine ray` (it holds "
            f"{lock_file(out)}): wait for it to end, or use another --out"
        ) from None
    return lock


class PredictionSink:
    """Rows in, written at once; what an earlier run of the same command already wrote.
    Used as a context manager: ``out``'s lock is held from the start to the end."""

    def __init__(self, out: str | Path, columns: list[str], bundle: str):
        self.out = Path(out)
        self.columns = columns
        self.parquet = is_parquet(out)
        self.sidecar = (
            self.out / "_scenes.json" if self.parquet else Path(f"{self.out}.scenes.json")
        )
        self.written = 0
        self.held_back: dict[str, list] = {}  # path -> its new row, swapped in by finish
        self._lock = hold_lock(self.out)
        try:
            earlier = self._earlier(bundle)
        except BaseException:
            self.close()
            raise
        last = {path: (digest, error) for path, digest, error in earlier}  # the last row wins
        self.done = {path: digest for path, (digest, error) in last.items() if not error}
        self.present = set(last)  # files with a row: a new one waits for finish
        self._twice = len(earlier) > len(last)
        self._next_part = 1 + max((n for n, _ in self._parts()), default=-1)

    def __enter__(self) -> PredictionSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._lock.release()

    def _parts(self) -> list[tuple[int, Path]]:
        return numbered_parts(self.out) if self.parquet else []

    # -- what is already there ------------------------------------------------------------
    def _earlier(self, bundle: str) -> list[tuple[str, str, str]]:
        """(path, digest, error) of every row there, in the order they were written."""
        exists = self.out.exists()
        if exists and not self.sidecar.is_file():
            raise UsageError(
                f"--out {self.out} exists and was not written by `scenes predict --engine ray` "
                f"(no {self.sidecar.name}): name a new file, or delete it to start over"
            )
        mine = {"bundle": bundle, "columns": self.columns}
        if not exists:
            self._start(json.dumps(mine, indent=2) + "\n")
            return []
        saved = json.loads(self.sidecar.read_text())
        if saved != mine:
            what = "another model" if saved.get("bundle") != bundle else "other columns"
            raise UsageError(
                f"--out {self.out} holds predictions of {what} (top-k, acceptance); a rerun "
                "continues only the same command: use another --out"
            )
        return self._read_parts() if self.parquet else self._read_csv()

    def _start(self, sidecar: str) -> None:
        if not self.parquet:
            write_text(self.sidecar, sidecar)
            return
        with replacing_folder(self.out) as folder:  # never a folder without its _scenes.json
            write_text(folder / self.sidecar.name, sidecar, durable=False)

    def _read_parts(self) -> list[tuple[str, str, str]]:
        import pyarrow.parquet as pq

        rows = []
        for _, part in self._parts():
            table = pq.read_table(part, columns=["path", "digest", "error"]).to_pydict()
            rows += zip(table["path"], table["digest"], table["error"])
        return rows

    def _read_csv(self) -> list[tuple[str, str, str]]:
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

    # -- writing --------------------------------------------------------------------------
    def write(self, rows: list[list]) -> None:
        """Rows of files not there yet are written now; a row of a file that has one already
        waits for ``finish``, so a kill never leaves a file twice."""
        fresh = []
        for row in rows:
            if row[0] in self.present:
                self.held_back[row[0]] = row
            else:
                fresh.append(row)
                self.present.add(row[0])
        if fresh and self.parquet:
            self._write_part(fresh)
        elif fresh:
            new = not self.out.is_file() or self.out.stat().st_size == 0
            with self.out.open("a", newline="") as fh:
                writer = SafeWriter(fh)
                if new:
                    writer.writerow(self.columns)
                writer.writerows(fresh)
                fh.flush()
                os.fsync(fh.fileno())
        self.written += len(rows)

    def _table(self, rows: list[list]):
        import pyarrow as pa

        data = {
            name: [None if (v == "" and name not in ALWAYS_TEXT) else v for v in values]
            for name, values in zip(self.columns, zip(*rows))
        }
        schema = pa.schema([(name, column_type(name)) for name in self.columns])
        return pa.Table.from_pydict(data, schema=schema)

    def _write_part(self, rows: list[list]) -> None:
        import pyarrow.parquet as pq

        with replacing_path(self.out / f"part-{self._next_part:05d}.parquet") as tmp:
            pq.write_table(self._table(rows), tmp)
        self._next_part += 1

    def finish(self) -> None:
        """Swap the held-back rows in for their files' old ones, and drop every row that a
        later one of the same file replaces."""
        if not self.held_back and not self._twice:
            return
        if self.parquet:
            self._rewrite_parts()
        else:
            self._rewrite_csv()
        self.held_back.clear()
        self._twice = False

    def _rewrite_csv(self) -> None:
        with self.out.open(newline="") as fh:
            header, *body = list(csv.reader(fh))
        path_i = header.index("path")
        paths = [restore(r[path_i]) for r in body]
        last = {path: i for i, path in enumerate(paths)}
        kept = [
            [neutralise(c) for c in self.held_back[path]] if path in self.held_back else row
            for i, (path, row) in enumerate(zip(paths, body))
            if last[path] == i
        ]
        with replacing(self.out) as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(kept)

    def _rewrite_parts(self) -> None:
        """Each part rewritten in one rename, its old rows swapped for their new ones there."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        found = [part for _, part in self._parts()]
        columns = [pq.read_table(p, columns=["path"]).column("path").to_pylist() for p in found]
        last = {path: (k, i) for k, paths in enumerate(columns) for i, path in enumerate(paths)}
        for k, (part, paths) in enumerate(zip(found, columns)):
            final = [last[path] == (k, i) for i, path in enumerate(paths)]
            new = [self.held_back[p] for p, f in zip(paths, final) if f and p in self.held_back]
            if all(final) and not new:
                continue
            keep = [f and p not in self.held_back for p, f in zip(paths, final)]
            table = pq.read_table(part).filter(pa.array(keep))
            if new:
                table = pa.concat_tables([table, self._table(new)])
            with replacing_path(part) as tmp:
                pq.write_table(table, tmp)
