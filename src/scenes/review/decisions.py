"""``RUN/review/decisions.csv``: what the reviewer decided about each queued photo.

One row per photo (``DECISION_COLUMNS``): ``decision`` is a class name (several joined by
``;`` for a multi-label run), ``keep`` (the given label stands) or ``exclude`` (leave the
photo out of training). ``sha256`` is the file's digest when it was decided: a photo whose
bytes changed since is undecided again (shown again), and ``data.relabel`` can refuse to apply
its stale decision. Deciding a photo again replaces its row (the new row goes last). ``undo``
removes the last row, so the photo it decided is undecided again: the file is always the
list of decisions in force, in the order they were made. Every change rewrites the whole file
through ``scenes.atomic``: a crash leaves the previous file or the new one, never half a row.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import replacing
from ..csvfile import SafeWriter, restore
from ..errors import DataError

DECISIONS_CSV = "decisions.csv"
DECISION_COLUMNS = ["path", "sha256", "given", "decision", "queue", "rank", "decided_at"]
KEEP, EXCLUDE = "keep", "exclude"
LABEL_SEPARATOR = ";"


def file_digest(path: str | Path) -> str:
    """The file's sha256 (hex); "" for a file that is gone (no decision can match it)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return ""
    return digest.hexdigest()


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Decision:
    path: str
    sha256: str
    given: str
    decision: str
    queue: str
    rank: int
    decided_at: str

    @property
    def changed(self) -> bool:
        """Excluded, or relabelled to other class(es) than the given label."""
        return self.decision != KEEP and self.decision != self.given


class DecisionStore:
    """The decisions of one review folder, kept in memory and on disk alike."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / DECISIONS_CSV
        self.rows: list[Decision] = self._read() if self.path.is_file() else []

    def _read(self) -> list[Decision]:
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = set(DECISION_COLUMNS) - set(reader.fieldnames or [])
            if missing:
                raise DataError(
                    f"{self.path} lacks the column(s) {', '.join(sorted(missing))}; it is not a "
                    "decisions file scenes review wrote: move it away to start a new review"
                )
            rows = []
            for line, r in enumerate(reader, start=2):
                try:
                    rank = int(r["rank"])
                except ValueError:
                    raise DataError(
                        f"{self.path}, line {line}: rank {r['rank']!r} is not a number"
                    ) from None
                cells = [restore(r[c]) for c in DECISION_COLUMNS]
                rows.append(Decision(*cells[:5], rank, cells[6]))
        return rows

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as fh:
            writer = SafeWriter(fh)
            writer.writerow(DECISION_COLUMNS)
            writer.writerows(astuple(row) for row in self.rows)

    def decided(self, path: str | Path, sha256: str | None = None) -> Decision | None:
        """The decision in force for ``path``; None when there is none, or when ``sha256``
        (the file's digest now) differs from the digest it was decided on."""
        key = str(path)
        found = next((row for row in reversed(self.rows) if row.path == key), None)
        if found is not None and sha256 is not None and found.sha256 != sha256:
            return None
        return found

    def decide(
        self, path: str | Path, sha256: str, given: str, decision: str, queue: str, rank: int
    ) -> Decision:
        """Record ``decision`` for ``path`` (replacing an earlier one) and save the file."""
        row = Decision(str(path), sha256, given, decision, queue, int(rank), now_utc())
        self.rows = [r for r in self.rows if r.path != row.path] + [row]
        self._save()
        return row

    def forget(self, path: str | Path) -> Decision | None:
        """Remove ``path``'s decision (a multi-label photo whose last class was taken off)."""
        found = self.decided(path)
        if found is not None:
            self.rows = [r for r in self.rows if r.path != found.path]
            self._save()
        return found

    def undo(self) -> Decision | None:
        """Remove the last decision made and save; returns it (None: nothing to undo)."""
        if not self.rows:
            return None
        last = self.rows.pop()
        self._save()
        return last
