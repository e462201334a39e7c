"""``scenes resize``: resize a folder tree of images in parallel (the original rescale step).

Outputs keep the tree and file names; existing outputs newer than their source and already at
the requested size are skipped, and every file is written to a temporary name first, so
re-running is safe and cheap.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..atomic import replacing
from ..choices import worker_count
from ..console import stage
from ..errors import MissingPathError, UsageError
from ..outputs import output_dir
from .files import list_files
from .images import load_image

# Formats we write back as themselves; anything else (GIF) becomes PNG (lossless, universal).
SAVE_AS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


@dataclass
class ResizeSummary:
    written: int = 0
    skipped: int = 0  # already up to date
    failed: dict[str, str] = field(default_factory=dict)


def output_path(src_root: Path, dst_root: Path, path: Path) -> Path:
    """The same relative path; a file converted to PNG keeps its whole name (``x.gif`` ->
    ``x.gif.png``), so it cannot overwrite a sibling ``x.png``."""
    target = dst_root / path.relative_to(src_root)
    return target if target.suffix.lower() in SAVE_AS else target.with_name(target.name + ".png")


def check_distinct(targets: dict[Path, Path]) -> None:
    """Two sources must never be written to one file (one would silently replace the other)."""
    seen: dict[Path, Path] = {}
    for source, target in targets.items():
        if target in seen:
            raise UsageError(
                f"{seen[target]} and {source} would both be written to {target}; rename one"
            )
        seen[target] = source


def is_done(source: Path, target: Path, size: int) -> bool:
    """Up to date: newer than its source and at ``size`` (a re-run with another --size redoes it).
    Opening only reads the header, so checking a done tree stays cheap."""
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        return False
    try:
        with Image.open(target) as im:
            return im.size == (size, size)
    except Exception:  # a truncated or foreign file at the target: write it again
        return False


def _resize_one(job: tuple[str, str, int]) -> str | None:
    src, dst, size = job
    try:
        pixels = load_image(src, size)
        target = Path(dst)
        fmt = SAVE_AS.get(target.suffix.lower(), "PNG")
        # no fsync of the folder per image: a rename lost to a power cut is only redone
        with replacing(target, "wb", durable=False) as fh:
            Image.fromarray(pixels).save(
                fh, format=fmt, **({"quality": 95} if fmt == "JPEG" else {})
            )
        return None
    except Exception as exc:  # report and go on: one bad file must not stop the tree
        return f"{type(exc).__name__}: {exc}"


def resize_tree(
    src: str | Path,
    dst: str | Path,
    size: int = 224,
    workers: int | None = None,
    progress: bool = True,
) -> ResizeSummary:
    src, dst = Path(src), Path(dst)
    if src.is_file():
        raise UsageError(f"SRC {src} is a file; resize takes a folder (it keeps its tree)")
    if not src.is_dir():
        raise MissingPathError(f"source folder not found: {src}")
    output_dir(dst, "DST")
    if size < 1:
        raise UsageError("--size must be a positive number of pixels")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise UsageError(f"DST {dst} must not be SRC or inside it")
    summary = ResizeSummary()
    jobs = []
    targets = {path: output_path(src, dst, path) for path in list_files(src)}
    check_distinct(targets)
    for path, target in targets.items():
        if is_done(path, target, size):
            summary.skipped += 1
        else:
            jobs.append((str(path), str(target), size))
    workers = workers or worker_count(None)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_resize_one, jobs, chunksize=16)
        with stage(f"resizing to {size} px", len(jobs), show=progress) as bar:
            for (source, _, _), error in zip(jobs, results, strict=True):
                if error is None:
                    summary.written += 1
                else:
                    summary.failed[source] = error
                bar.update()
    return summary


def run_resize(src: str, dst: str, size: int = 224, workers: int | None = None) -> int:
    summary = resize_tree(src, dst, size, workers)
    print(
        f"resized {summary.written}, already done {summary.skipped}, unreadable {len(summary.failed)}"
    )
    for path, error in summary.failed.items():
        print(f"  skipped {path}: {error}")
    return 0 if not summary.failed else 1
