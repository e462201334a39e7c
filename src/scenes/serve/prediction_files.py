"""Where ``scenes predict --engine ray`` writes, so that a rerun picks up where it stopped.

The columns of ``predict``'s CSV plus ``digest`` (the SHA-256 of the file's bytes), in a CSV
or a Parquet folder (``prediction_stores``: this module is the policy, that one the formats).
Beside it, ``_scenes.json`` (inside
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

import json
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import UsageError
from .prediction_stores import open_store


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
        self.store = open_store(self.out, columns)
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

    def __enter__(self) -> PredictionSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._lock.release()

    def _earlier(self, bundle: str) -> list[tuple[str, str, str]]:
        """(path, digest, error) of every row there, in the order they were written."""
        sidecar = self.store.sidecar
        exists = self.out.exists()
        if exists and not sidecar.is_file():
            raise UsageError(
                f"--out {self.out} exists and was not written by `scenes predict --engine ray` "
                f"(no {sidecar.name}): name a new file, or delete it to start over"
            )
        mine = {"bundle": bundle, "columns": self.columns}
        if not exists:
            self.store.start(json.dumps(mine, indent=2) + "\n")
            return []
        saved = json.loads(sidecar.read_text())
        if saved != mine:
            what = "another model" if saved.get("bundle") != bundle else "other columns"
            raise UsageError(
                f"--out {self.out} holds predictions of {what} (top-k, acceptance); a rerun "
                "continues only the same command: use another --out"
            )
        return self.store.read()

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
        if fresh:
            self.store.append(fresh)
        self.written += len(rows)

    def finish(self) -> None:
        """Swap the held-back rows in for their files' old ones, and drop every row that a
        later one of the same file replaces."""
        if not self.held_back and not self._twice:
            return
        self.store.rewrite(self.held_back)
        self.held_back.clear()
        self._twice = False
