"""What ``scenes review`` shows, in order: the queue of photos to look at.

- ``issues``: the label-issue suspects of ``scenes data issues`` (``label_issues.csv``, most
  likely errors first; its score is the label quality, low = suspicious), computed with the
  pretrained backbone when the run has none for the data folder yet.
- ``mistakes``: the wrong answers of ``scenes evaluate`` (its ``predictions.csv``), the most
  confident first; the score is that confidence. Of a multi-label evaluation: the photos with
  the most wrong labels first, the score their count, the given labels joined by ``;``.
- ``uncertain``: the rows of a selection CSV that ``scenes data select`` writes (``rank``,
  ``path``, ``score``, ``strategy``, ``label_1``, ``prob_1``, ``label_2``, ``prob_2``), in its
  order; these photos are unlabelled, so their given label is empty.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..csvfile import restore
from ..errors import DataError, MissingPathError, UsageError
from ..evaluation.outputs import PREDICTIONS_CSV
from ..label_issues.outputs import ISSUES_CSV
from ..rundir import RunDir
from ..selection_file import read_selection
from .decisions import LABEL_SEPARATOR

QUEUES = ("issues", "mistakes", "uncertain")


@dataclass(frozen=True)
class QueueItem:
    path: Path
    given: str  # the label the photo has now ("" for an unlabelled photo)
    queue: str
    rank: int  # 1 = looked at first
    score: float
    why: str  # why it is queued, in words


def read_rows(path: Path, needed: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise MissingPathError(f"{path} not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)}")
        return [{k: restore(v or "") for k, v in row.items()} for row in reader]


def number(path: Path, line: int, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}: {column} {text!r} is not a number") from None


def issues_queue(path: Path) -> list[QueueItem]:
    items = []
    for rank, row in enumerate(read_rows(path, ["path", "given", "suggested", "score"]), 1):
        score = number(path, rank + 1, "score", row["score"])
        why = f"label issue #{rank}: label quality {score:.3f}, suggested {row['suggested']}"
        items.append(
            QueueItem(Path(row["path"]).resolve(), row["given"], "issues", rank, score, why)
        )
    return items


def multilabel_mistakes(path: Path, rows: list[dict[str, str]]) -> list[QueueItem]:
    """A multi-label evaluation's wrong photos, the most wrong labels first (as its grid)."""
    wrong = []
    for line, r in enumerate(rows, 2):
        true, predicted = set(r["true"].split()), set(r["predicted"].split())
        if true != predicted:
            wrong.append((len(true ^ predicted), line, r))
    wrong.sort(key=lambda found: (-found[0], found[1]))
    return [
        QueueItem(
            Path(r["path"]).resolve(),
            LABEL_SEPARATOR.join(r["true"].split()),
            "mistakes",
            rank,
            float(count),
            f"mistake #{rank}: answered {r['predicted'] or 'no label'}, {count} label(s) wrong",
        )
        for rank, (count, _, r) in enumerate(wrong, 1)
    ]


def mistakes_queue(path: Path) -> list[QueueItem]:
    rows = read_rows(path, ["path", "true", "predicted"])
    if rows and "confidence" not in rows[0]:  # a multi-label evaluation: no one confidence
        return multilabel_mistakes(path, rows)
    wrong = [
        (number(path, line, "confidence", r["confidence"]), line, r)
        for line, r in enumerate(rows, 2)
        if r["predicted"] != r["true"]
    ]
    wrong.sort(key=lambda found: (-found[0], found[1]))
    return [
        QueueItem(
            Path(r["path"]).resolve(),
            r["true"],
            "mistakes",
            rank,
            confidence,
            f"mistake #{rank}: answered {r['predicted']} with confidence {confidence:.3f}",
        )
        for rank, (confidence, _, r) in enumerate(wrong, 1)
    ]


def selection_queue(path: Path) -> list[QueueItem]:
    """A ``scenes data select`` file, read by its own reader (``selection_file``)."""
    items = []
    for row in read_selection(path):
        why = f"uncertain #{row.rank}: {row.strategy} score {row.score:.3f}"
        items.append(QueueItem(Path(row.path).resolve(), "", "uncertain", row.rank, row.score, why))
    return sorted(items, key=lambda item: item.rank)


def newest_predictions(run: Path) -> Path:
    found = sorted(RunDir(run).eval.glob(f"*/{PREDICTIONS_CSV}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UsageError(
            f"{run} holds no evaluation ({RunDir(run).eval}/*/{PREDICTIONS_CSV}): run "
            f"`scenes evaluate --run {run} --data DIR` first, or pass --predictions FILE"
        )
    return found[-1]


def issues_file(run: Path, data: str | None) -> Path:
    """RUN/label_issues/<data folder>/label_issues.csv, written first when missing."""
    folder = RunDir(run).label_issues
    if data is None:
        found = sorted(folder.glob(f"*/{ISSUES_CSV}"))
        if len(found) == 1:
            return found[0]
        held = f"holds {len(found)}" if found else "holds none"
        raise UsageError(
            f"--queue issues: {folder} {held}; pass --data DIR (the labelled folder to rank)"
        )
    from ..data.discover import find_layout
    from ..label_issues.command import default_out_dir, run_issues

    target = default_out_dir(find_layout(data).root, str(run)) / ISSUES_CSV
    if not target.is_file():
        run_issues(data, out=str(target.parent))
    return target


def load_queue(
    run: str | Path,
    queue: str,
    data: str | None = None,
    predictions: str | None = None,
    selection: str | None = None,
) -> list[QueueItem]:
    run = Path(run)
    given = {"issues": data, "mistakes": predictions, "uncertain": selection}
    stray = [q for q, value in given.items() if value is not None and q != queue]
    if stray:
        option = {"issues": "--data", "mistakes": "--predictions", "uncertain": "--selection"}
        raise UsageError(
            f"{option[stray[0]]} is for --queue {stray[0]}, not --queue {queue}: it would be "
            "ignored; leave it out or choose that queue"
        )
    if queue == "issues":
        return issues_queue(issues_file(run, data))
    if queue == "mistakes":
        return mistakes_queue(Path(predictions) if predictions else newest_predictions(run))
    if queue == "uncertain":
        if selection is None:
            raise UsageError(
                "--queue uncertain reads a selection: pass --selection FILE (written by "
                "`scenes data select`)"
            )
        return selection_queue(Path(selection))
    raise UsageError(f"unknown --queue {queue!r}; choose from {', '.join(QUEUES)}")


def only_under(items: list[QueueItem], paths: list[str]) -> list[QueueItem]:
    """The items that are one of ``paths`` or inside one of them (all items without paths)."""
    if not paths:
        return items
    roots = [Path(p).resolve() for p in paths]
    kept = [i for i in items if any(i.path.resolve().is_relative_to(r) for r in roots)]
    if not kept:
        raise UsageError(f"none of the {len(items)} queued photos is under {', '.join(paths)}")
    return kept
