"""``scenes data cache``: what the cache folder holds, and clearing it.

The cache (``$SCENES_CACHE``, else ``~/.cache/scenes``; a run's ``data.cache_dir`` when set)
holds decoded images (a ``.npy`` + ``.json`` per list of files and size), backbone features
(``features/*.npz``), distillation teachers' outputs (``teacher-outputs/``) and the model-name
listing (``model-names/``). Nothing removes an entry by itself: a dataset that changed, another
image size or an older scenes leave theirs behind. Only files of these kinds are listed and
removed: a folder shared with other files keeps them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..cache_folders import FEATURES, MODEL_NAMES, TEACHER_OUTPUTS
from ..config import default_cache_dir
from ..console import plural
from ..errors import MissingPathError
from .cache import CACHE_VERSION

KEY = re.compile(r"[0-9a-f]{24}")  # the decoded-image cache's file stems
# an entry's files and lock, and what a killed writer leaves (scenes.atomic's temporary names)
LEFTOVER = re.compile(r"\.?[0-9a-f]{24}\.(npy|json|lock)(\.\w+\.tmp(\.npy)?)?")


@dataclass
class Entry:
    kind: str
    description: str
    files: list[Path]
    last_used: float  # seconds since the epoch

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.is_file())


def _decoded(folder: Path) -> list[Entry]:
    entries, claimed = [], set()
    for meta in sorted(folder.glob("*.json")):
        if not KEY.fullmatch(meta.stem):
            continue
        files = [f for f in (folder / f"{meta.stem}.npy", meta) if f.is_file()]
        claimed.update(files)
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("version") == CACHE_VERSION:
            what = (
                f"{plural(info['count'], 'image')} at {info['image_size']} px "
                f"({info['interpolation']}) from {info['folder']}"
            )
        else:
            what = "written by an older scenes: no longer read"
        entries.append(Entry("decoded images", what, files, meta.stat().st_mtime))
    # Lock files, and what an interrupted build or an entry's lost .json left behind.
    stray = [f for f in folder.iterdir() if LEFTOVER.fullmatch(f.name) and f not in claimed]
    if stray:
        newest = max(f.stat().st_mtime for f in stray)
        entries.append(Entry("leftovers", "locks and unfinished files", stray, newest))
    return entries


def _features(folder: Path) -> list[Entry]:
    entries = []
    for npz in sorted((folder / FEATURES).glob("*.npz")):
        entries.append(
            Entry("features", f"one backbone's features ({npz.stem})", [npz], npz.stat().st_mtime)
        )
    return entries


def _teacher_outputs(folder: Path) -> list[Entry]:
    """One entry per stored set of answers (``training.teacher_outputs``), and one for the
    locks and unfinished files beside them."""
    answers = folder / TEACHER_OUTPUTS
    if not answers.is_dir():
        return []
    entries, claimed = [], set()
    for array in sorted(answers.glob("[!.]*.npy")):  # not a killed writer's .KEY.npy.*.tmp.npy
        meta = array.with_suffix(".json")
        files = [f for f in (array, meta) if f.is_file()]
        claimed.update(files)
        try:
            info = json.loads(meta.read_text())
            what = f"{plural(info['count'], 'image')} answered by {' + '.join(info['teachers'])}"
        except (OSError, ValueError, KeyError, TypeError):
            what = "answers of unknown teachers"
        used = max(f.stat().st_mtime for f in files)
        entries.append(Entry("teacher outputs", what, files, used))
    stray = [f for f in answers.iterdir() if f.is_file() and f not in claimed]
    if stray:
        newest = max(f.stat().st_mtime for f in stray)
        entries.append(Entry("leftovers", "locks and unfinished answers", stray, newest))
    return entries


def _model_names(folder: Path) -> list[Entry]:
    files = sorted((folder / MODEL_NAMES).glob("*.json"))
    if not files:
        return []
    newest = max(f.stat().st_mtime for f in files)
    return [Entry("model names", "`scenes models` listing", files, newest)]


def cache_entries(folder: Path) -> list[Entry]:
    if not folder.is_dir():
        return []
    return _decoded(folder) + _features(folder) + _teacher_outputs(folder) + _model_names(folder)


def remove(entries: list[Entry]) -> int:
    """Delete the entries' files; the bytes freed."""
    freed = 0
    for entry in entries:
        for f in entry.files:
            if f.is_file():
                freed += f.stat().st_size
                f.unlink()
    return freed


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def format_entries(folder: Path, entries: list[Entry]) -> str:
    if not entries:
        return f"{folder}: empty"
    now = time.time()
    lines = [f"{folder}: {plural(len(entries), 'entry', 'entries')}, "]
    lines[0] += megabytes(sum(e.size for e in entries))
    lines.append(f"  {'kind':<15} {'size':>11} {'last used':>10}  what")
    for e in sorted(entries, key=lambda e: e.last_used, reverse=True):
        days = (now - e.last_used) / 86400
        used = "today" if days < 1 else f"{days:.0f} days ago"
        lines.append(f"  {e.kind:<15} {megabytes(e.size):>11} {used:>10}  {e.description}")
    return "\n".join(lines)


def run_cache(
    cache_dir: str | None = None, clear: bool = False, older_than: float | None = None
) -> int:
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if cache_dir and not folder.is_dir():
        raise MissingPathError(f"cache folder not found: {folder}")
    entries = cache_entries(folder)
    if older_than is not None:
        cutoff = time.time() - older_than * 86400
        entries = [e for e in entries if e.last_used < cutoff]
    if not clear:
        print(format_entries(folder, entries))
        if entries:
            print("remove them with `scenes data cache --clear` (--older-than DAYS: unused ones)")
        return 0
    freed = remove(entries)
    print(f"removed {plural(len(entries), 'entry', 'entries')} ({megabytes(freed)}) from {folder}")
    return 0
