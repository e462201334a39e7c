"""One review: the queue, the decisions in force, and what the page shows of each photo.

The photo, its top classes and its heatmap come from the ``Predictor`` (the numbers ``scenes
predict`` gives). The page receives pixels, which Gradio writes into the app's own upload
folder: no path of the data folder is ever served, and nothing in it is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..serve.app_files import check_pixel_count
from ..serve.heatmaps import explain_batch
from ..serve.predictor import Predictor
from .decisions import EXCLUDE, KEEP, LABEL_SEPARATOR, Decision, DecisionStore, file_digest
from .neighbours import Neighbour, labelled_otherwise
from .queues import QueueItem

SHOWN_SIDE = 1024  # the photo is sent at most this wide or high (the page shows it large)
NEIGHBOUR_SIDE = 256  # a near-duplicate's thumbnail
log = logging.getLogger(__name__)


@dataclass
class Shown:
    """What the page shows of one queued photo."""

    photo: np.ndarray | None
    heatmap: np.ndarray | None
    top: dict[str, float]
    problem: str = ""  # why the photo cannot be shown ("" when it can)


def photo_pixels(path: Path, side: int = SHOWN_SIDE) -> np.ndarray:
    """The photo upright (EXIF orientation), RGB, at most ``side`` on its longer side."""
    check_pixel_count(str(path))
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((side, side))
        return np.asarray(image)


class ReviewSession:
    """A queue reviewed against a decisions store; the page's handlers call it."""

    def __init__(
        self,
        predictor: Predictor,
        items: list[QueueItem],
        store: DecisionStore,
        neighbours: dict[Path, list[Neighbour]] | None = None,
        near_root: Path | None = None,
    ):
        self.predictor = predictor
        self.items = items
        self.store = store
        # None: near-duplicates were not looked for (no --near); {} : looked for, none found
        self.neighbours = neighbours
        self.near_root = near_root
        self.class_names = predictor.class_names
        self.multilabel = predictor.meta.task == "multilabel"
        self.top_k = len(self.class_names) if self.multilabel else min(3, len(self.class_names))
        self._digests: dict[tuple[str, int, int], str] = {}
        self._shown: dict[tuple[int, str], Shown] = {}

    def digest(self, index: int) -> str:
        """The photo's sha256 now (re-read only when its size or modification time changed)."""
        path = self.items[index].path
        try:
            stat = path.stat()
        except FileNotFoundError:
            return ""
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def decision(self, index: int) -> Decision | None:
        """The decision in force for the item: None when undecided or the file changed since."""
        return self.store.decided(self.items[index].path, self.digest(index))

    def counts(self) -> tuple[int, int, int]:
        """(done, left, changed) over the queue."""
        decisions = [self.decision(i) for i in range(len(self.items))]
        done = [d for d in decisions if d is not None]
        return len(done), len(self.items) - len(done), sum(d.changed for d in done)

    def first_undecided(self, start: int = 0) -> int:
        """The first undecided item from ``start`` on (wrapping around); ``start`` when every
        item is decided."""
        n = len(self.items)
        for step in range(n):
            index = (start + step) % n
            if self.decision(index) is None:
                return index
        return min(start, n - 1)

    def show(self, index: int) -> Shown:
        """What the page shows of the item, computed again when its file changed."""
        key = (index, self.digest(index))
        if key not in self._shown:
            self._shown[key] = self._explain(self.items[index].path)
        return self._shown[key]

    def _explain(self, path: Path) -> Shown:
        try:
            photo = photo_pixels(path)
            pixels = self.predictor.load_image(path)
        except MemoryError:
            raise
        except Exception as exc:
            log.info("review: %s cannot be shown (%s: %s)", path, type(exc).__name__, exc)
            return Shown(None, None, {}, f"this file cannot be read as a photo ({exc})")
        explained = explain_batch(self.predictor, pixels[None], [str(path)], top_k=self.top_k)[0]
        return Shown(photo, explained.overlay(), dict(explained.top))

    def near(self, index: int) -> list[Neighbour]:
        """The item's near-duplicates (none when they were not looked for)."""
        return (self.neighbours or {}).get(self.items[index].path.resolve(), [])

    def near_text(self, index: int) -> str:
        """One line on the item's near-duplicates: how many, and whether their labels differ
        from the photo's given one."""
        if self.neighbours is None:
            return "near-duplicates: not looked for (add --near DIR)"
        found = self.near(index)
        if not found:
            return f"near-duplicates: none in {self.near_root}"
        labels = sorted({n.label for n in found if n.label})
        text = f"near-duplicates: {len(found)} in {self.near_root}"
        if labels:
            text += f", labelled {', '.join(labels)}"
        if labelled_otherwise(self.items[index].given, found):
            text += " (**labels differ**: if it is a copy, one label is wrong)"
        return text

    def near_photos(self, index: int) -> list[tuple[np.ndarray, str]]:
        """The near-duplicates' thumbnails and captions, pixels only (no path is served)."""
        shown = []
        for neighbour in self.near(index):
            try:
                pixels = photo_pixels(neighbour.path, NEIGHBOUR_SIDE)
            except MemoryError:
                raise
            except Exception as exc:  # gone or changed since it was grouped
                log.info("review: near-duplicate %s cannot be shown (%s)", neighbour.path, exc)
                continue
            shown.append((pixels, neighbour.caption(self.near_root or Path("/"))))
        return shown

    def decide(self, index: int, decision: str) -> Decision:
        item = self.items[index]
        digest = self.digest(index)
        return self.store.decide(item.path, digest, item.given, decision, item.queue, item.rank)

    def choose_class(self, index: int, class_name: str) -> Decision | None:
        """Relabel to ``class_name``; multi-label: add it to the photo's labels, or take it off
        (None when no label is left: the item is undecided again)."""
        if not self.multilabel:
            return self.decide(index, class_name)
        current = self.decision(index)
        # The classes toggled are the photo's labels as they stand: its given ones until
        # relabelled, none once excluded.
        labels = self.items[index].given if current is None or current.decision == KEEP else ""
        if current is not None and current.decision not in (KEEP, EXCLUDE):
            labels = current.decision
        chosen = {name for name in labels.split(LABEL_SEPARATOR) if name} ^ {class_name}
        if not chosen:
            self.store.forget(self.items[index].path)
            return None
        ordered = [name for name in self.class_names if name in chosen]
        return self.decide(index, LABEL_SEPARATOR.join(ordered))

    def undo(self) -> int | None:
        """Remove the last decision; the index of its item (None: nothing to undo, or its item
        is not in this queue)."""
        undone = self.store.undo()
        if undone is None:
            return None
        return next((i for i, item in enumerate(self.items) if str(item.path) == undone.path), None)
