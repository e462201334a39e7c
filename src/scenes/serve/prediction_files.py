"""Where ``scenes predict --engine ray`` writes, so that a rerun picks up where it stopped.

Two formats, the columns of ``predict``'s CSV plus ``digest`` (the SHA-256 of the file's
bytes): a CSV (``preds.csv``, rows appended and flushed as they come), or Parquet
(``preds.parquet/``, a folder of parts, each written whole and renamed into place; pandas,
pyarrow, Spark and DuckDB read the folder as one table). Beside it, ``_scenes.json`` (inside
the Parquet folder, ``<out>.scenes.json`` for a CSV) says which bundle and columns wrote it: a
rerun with another model or top-k is refused rather than mixed in.

A rerun skips every file whose path and digest are already written; a file that changed since
is predicted again and its old row dropped at the end, so each file is there exactly once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from ..csvfile import SafeWriter, restore
from ..errors import UsageError

# Always text; in Parquet an empty cell of any other column is null (no label, no error).
ALWAYS_TEXT = ("path", "digest")


def writing(part: Path) -> Path:
    """Where a part is written before it is renamed into place: a name starting with "_",
    which pandas and pyarrow skip when they read the folder, even if a kill leaves it behind."""
    return part.with_name(f"_{part.name}.tmp")


def is_parquet(out: str | Path) -> bool:
    return str(out).lower().rstrip("/").endswith(".parquet")


def bundle_digest(bundle: Path) -> str:
    """The SHA-256 of the bundle's metadata and weights: which model answered."""
    digest = hashlib.sha256()
    for path in sorted(bundle.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors"):
            digest.update(path.relative_to(bundle).as_posix().encode())
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def column_type(name: str):
    import pyarrow as pa

    if name == "accepted":
        return pa.bool_()
    if name.startswith("prob_") or name == "unknown_score":
        return pa.float64()
    return pa.string()


class PredictionSink:
    """Rows in, written at once; what an earlier run of the same command already wrote."""

    def __init__(self, out: str | Path, columns: list[str], bundle: str):
        self.out = Path(out)
        self.columns = columns
        self.parquet = is_parquet(out)
        self.sidecar = (
            self.out / "_scenes.json" if self.parquet else Path(f"{self.out}.scenes.json")
        )
        self.written = 0
        self.replaced: set[str] = set()
        self.done = self._earlier(bundle)  # path -> digest
        self._part = len(list(self.out.glob("part-*.parquet"))) if self.parquet else 0

    # -- what is already there ------------------------------------------------------------
    def _earlier(self, bundle: str) -> dict[str, str]:
        exists = self.out.exists()
        if exists and not self.sidecar.is_file():
            raise UsageError(
                f"--out {self.out} exists and was not written by `scenes predict --engine ray` "
                f"(no {self.sidecar.name}): name a new file, or delete it to start over"
            )
        mine = {"bundle": bundle, "columns": self.columns}
        if exists:
            saved = json.loads(self.sidecar.read_text())
            if saved != mine:
                what = "another model" if saved.get("bundle") != bundle else "other columns"
                raise UsageError(
                    f"--out {self.out} holds predictions of {what} (top-k, acceptance); a rerun "
                    "continues only the same command: use another --out"
                )
        else:
            (self.out if self.parquet else self.out.parent).mkdir(parents=True, exist_ok=True)
            self.sidecar.write_text(json.dumps(mine, indent=2) + "\n")
        return self._read_done() if exists else {}

    def _read_done(self) -> dict[str, str]:
        if self.parquet:
            import pyarrow.parquet as pq

            parts = sorted(self.out.glob("part-*.parquet"))
            if not parts:
                return {}
            table = pq.read_table(parts, columns=["path", "digest"])
            return dict(zip(table.column("path").to_pylist(), table.column("digest").to_pylist()))
        self._drop_torn_line()
        if not self.out.is_file():
            return {}
        with self.out.open(newline="") as fh:
            return {restore(r["path"]): r["digest"] for r in csv.DictReader(fh)}

    def _drop_torn_line(self) -> None:
        """A CSV cut by a kill can end mid-row: that row is dropped (and predicted again)."""
        if not self.out.is_file() or self.out.stat().st_size == 0:
            return
        data = self.out.read_bytes()
        if not data.endswith(b"\n"):
            self.out.write_bytes(data[: data.rfind(b"\n") + 1])

    # -- writing --------------------------------------------------------------------------
    def write(self, rows: list[list]) -> None:
        if not rows:
            return
        for row in rows:
            path = row[0]
            if path in self.done:
                self.replaced.add(path)
        if self.parquet:
            self._write_part(rows)
        else:
            new = not self.out.is_file() or self.out.stat().st_size == 0
            with self.out.open("a", newline="") as fh:
                writer = SafeWriter(fh)
                if new:
                    writer.writerow(self.columns)
                writer.writerows(rows)
                fh.flush()
                os.fsync(fh.fileno())
        self.written += len(rows)

    def _write_part(self, rows: list[list]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {
            name: [None if (v == "" and name not in ALWAYS_TEXT) else v for v in values]
            for name, values in zip(self.columns, zip(*rows))
        }
        schema = pa.schema([(name, column_type(name)) for name in self.columns])
        table = pa.Table.from_pydict(data, schema=schema)
        final = self.out / f"part-{self._part:05d}.parquet"
        tmp = writing(final)
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # a part is there whole or not at all
        self._part += 1

    def finish(self) -> None:
        """Drop the earlier rows of the files predicted again because their content changed."""
        if not self.replaced:
            return
        stale = {p for p in self.replaced}
        if self.parquet:
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            for part in sorted(self.out.glob("part-*.parquet")):
                table = pq.read_table(part)
                digests = dict(
                    zip(table.column("path").to_pylist(), table.column("digest").to_pylist())
                )
                old = [p for p in stale if p in digests and digests[p] == self.done.get(p)]
                if old:
                    keep = pc.invert(pc.is_in(table.column("path"), value_set=pa_array(old)))
                    tmp = writing(part)
                    pq.write_table(table.filter(keep), tmp)
                    os.replace(tmp, part)
            return
        with self.out.open(newline="") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        path_i, digest_i = header.index("path"), header.index("digest")
        kept = [
            r
            for r in body
            if not (
                restore(r[path_i]) in stale and r[digest_i] == self.done.get(restore(r[path_i]))
            )
        ]
        tmp = self.out.with_suffix(self.out.suffix + ".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(kept)
        os.replace(tmp, self.out)


def pa_array(values: list[str]):
    import pyarrow as pa

    return pa.array(values, type=pa.string())
