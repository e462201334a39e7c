"""The near-duplicates of each queued photo in a labelled folder (``scenes review --near DIR``).

The same test as ``scenes data check --near`` (``label_issues.near_check.find_near_groups``:
MobileNetV2 feature distance plus pHash bits, features cached by content): the folder and the
queued photos are grouped together, and each queued photo is shown the other members of its
group with their labels. A copy under another label is the strongest hint that one of the two
labels is wrong; a copy of an unlabelled photo in the labelled folder says it is labelled already.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.check import DataFile, iter_files
from ..data.files import has_image_extension
from ..label_issues.near_check import find_near_groups
from ..models.near import NEAR_DISTANCE
from .decisions import LABEL_SEPARATOR
from .queues import QueueItem

QUEUED = "queued"  # the split of a queued photo that is not in the folder


@dataclass(frozen=True)
class Neighbour:
    path: Path
    split: str
    label: str | None
    kind: str  # "exact" (the same bytes) or "near"

    def caption(self, root: Path) -> str:
        try:
            name = self.path.relative_to(root)
        except ValueError:
            name = self.path
        where = f"{self.label} ({self.split})" if self.label else f"unlabelled ({self.split})"
        return f"{where}, {self.kind}: {name}"


def near_neighbours(
    items: list[QueueItem], folder: str | Path, cache_dir: Path | None
) -> dict[Path, list[Neighbour]]:
    """Each queued photo's near-duplicates among ``folder``'s images and the other queued
    photos, keyed by its resolved path (a photo without any is left out)."""
    files = [f for f in iter_files(folder) if has_image_extension(f.path)]
    known = {f.path.resolve() for f in files}
    for item in items:
        if item.path.resolve() not in known and item.path.is_file():
            files.append(DataFile(item.path, QUEUED, item.given or None))
            known.add(item.path.resolve())
    queued = {item.path.resolve() for item in items}
    found: dict[Path, list[Neighbour]] = {}
    for group in find_near_groups(files, cache_dir, NEAR_DISTANCE):
        # A group's "exact" says a member has a copy somewhere in the group; shown beside one
        # photo, "exact" must mean the same bytes as that photo.
        digests = group.digests
        for i, file in enumerate(group.files):
            if file.path.resolve() not in queued:
                continue
            found[file.path.resolve()] = [
                Neighbour(
                    other.path,
                    other.split,
                    other.label,
                    "exact" if digests[j] == digests[i] else "near",
                )
                for j, other in enumerate(group.files)
                if j != i
            ]
    return found


def labelled_otherwise(given: str, found: list[Neighbour]) -> list[str]:
    """The near-duplicates' labels that are not among the photo's given ones (none for an
    unlabelled photo: it has no label to contradict)."""
    labels = set(given.split(LABEL_SEPARATOR)) - {""}
    if not labels:
        return []
    return sorted({n.label for n in found if n.label and n.label not in labels})
