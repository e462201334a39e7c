"""``scenes data check`` / ``scenes data stats``: what is in a dataset folder, and what is wrong.

Check decodes every image fully (a truncated JPEG opens fine and fails only on decode),
hashes every file's bytes, and reports corrupt files, non-image files, the image size
histogram, exact duplicates within and across splits, and duplicates whose labels disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..choices import worker_count
from ..console import plural, stage
from ..errors import DataError
from .discover import find_layout
from .files import IMAGE_EXTENSIONS, content_digest, has_image_extension, list_files


@dataclass(frozen=True)
class DataFile:
    path: Path
    split: str
    label: str | None  # class folder name; None for unlabelled images (e.g. pred/)


@dataclass
class FileInfo:
    file: DataFile
    digest: str
    size: tuple[int, int] | None = None  # (width, height) when the image decodes
    error: str | None = None  # why a file with an image extension does not decode
    not_an_image: str | None = None  # why the file is no image at all


@dataclass
class DuplicateGroup:
    digest: str
    files: list[DataFile]

    @property
    def splits(self) -> set[str]:
        return {f.split for f in self.files}

    @property
    def labels(self) -> set[str]:
        return {f.label for f in self.files if f.label is not None}

    @property
    def across_splits(self) -> bool:
        return len(self.splits) > 1

    @property
    def label_conflict(self) -> bool:
        return len(self.labels) > 1


@dataclass
class CheckReport:
    root: Path
    num_files: int = 0
    corrupt: dict[Path, str] = field(default_factory=dict)
    non_images: dict[Path, str] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    num_classes: int = 0  # class folders seen (in any split)

    @property
    def label_conflicts(self) -> list[DuplicateGroup]:
        return [g for g in self.duplicates if g.label_conflict]

    @property
    def cross_split_duplicates(self) -> list[DuplicateGroup]:
        return [g for g in self.duplicates if g.across_splits]

    @property
    def num_problems(self) -> int:
        return len(self.corrupt) + len(self.non_images) + len(self.duplicates)

    @property
    def clean(self) -> bool:
        return self.num_problems == 0


def iter_files(root: str | Path) -> Iterator[DataFile]:
    """Every visible file, images or not: ``split/<class>/...`` is labelled, ``split/<file>`` is
    not. Non-image files are listed too: reporting them is part of the check."""
    for split, folder in find_layout(root).splits.items():
        for path in list_files(folder, images_only=False):
            parts = path.relative_to(folder).parts
            yield DataFile(path, split, parts[0] if len(parts) > 1 else None)


def inspect_file(file: DataFile) -> FileInfo:
    info = FileInfo(file, content_digest(file.path.read_bytes()))
    if not has_image_extension(file.path):
        info.not_an_image = f"{file.path.suffix or 'no'} extension"
        return info
    try:
        with Image.open(file.path) as image:
            info.size = image.size
            image.load()  # full decode: truncation shows up only here
    except UnidentifiedImageError:
        info.not_an_image = f"content is not an image despite its {file.path.suffix} name"
    except Exception as exc:  # anything PIL cannot decode is what we are looking for
        info.error = f"{type(exc).__name__}: {exc}"
    if info.error or info.not_an_image:
        info.size = None
    return info


def check_folder(root: str | Path, progress: bool = True) -> CheckReport:
    root = Path(root)
    files = list(iter_files(root))
    if not files:
        raise DataError(f"{root} holds no files to check")
    classes = {f.label for f in files if f.label is not None}
    report = CheckReport(root, num_files=len(files), num_classes=len(classes))
    # Decoding releases the GIL, so threads overlap file reads and JPEG decodes.
    workers = worker_count()
    infos = []
    with (
        ThreadPoolExecutor(workers) as pool,
        stage("checking", len(files), "file", show=progress and len(files) >= 500) as bar,
    ):
        for info in pool.map(inspect_file, files):
            infos.append(info)
            bar.update()
    by_digest: dict[str, list[DataFile]] = defaultdict(list)
    for info in infos:
        if info.not_an_image is not None:
            report.non_images[info.file.path] = info.not_an_image
            continue
        by_digest[info.digest].append(info.file)
        if info.error is not None:
            report.corrupt[info.file.path] = info.error
        else:
            report.sizes[info.size] += 1
    report.duplicates = [DuplicateGroup(d, fs) for d, fs in by_digest.items() if len(fs) > 1]
    return report


def _describe(file: DataFile, root: Path) -> str:
    where = file.split + (f"/{file.label}" if file.label else "")
    return f"{_relative(file.path, root)} [{where}]"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def format_report(report: CheckReport, max_sizes: int = 10) -> str:
    root = report.root
    lines = [f"checked {report.num_files} files in {root}"]
    decoded = sum(report.sizes.values())
    lines += ["", f"image sizes (width x height) of {decoded} readable images:"]
    for (w, h), n in report.sizes.most_common(max_sizes):
        lines.append(f"  {w:>5} x {h:<5} {n:>7}")
    others = sum(n for _, n in report.sizes.most_common()[max_sizes:])
    if others:
        lines.append(f"  {len(report.sizes) - max_sizes} other sizes: {others} images")
    if report.sizes:
        (common_w, common_h), _ = report.sizes.most_common(1)[0]
        smaller = sum(n for (w, h), n in report.sizes.items() if w < common_w or h < common_h)
        if smaller:
            lines.append(f"  {smaller} images are smaller than the usual {common_w}x{common_h}")
    lines.append("")
    lines.append(f"corrupt or unreadable images: {len(report.corrupt)}")
    lines += [f"  {_relative(p, root)}: {e}" for p, e in sorted(report.corrupt.items())]
    lines.append(f"non-image files: {len(report.non_images)}")
    lines += [f"  {_relative(p, root)}: {why}" for p, why in sorted(report.non_images.items())]
    within = [g for g in report.duplicates if not g.across_splits]
    lines.append(
        f"exact duplicates (same bytes): {plural(len(report.duplicates), 'group')}, "
        f"{len(within)} within a split, {len(report.cross_split_duplicates)} across splits, "
        f"{len(report.label_conflicts)} with conflicting labels"
    )
    for group in sorted(report.duplicates, key=lambda g: (not g.label_conflict, g.digest)):
        tag = "LABEL CONFLICT" if group.label_conflict else "duplicate"
        if group.across_splits:
            tag += ", across splits"
        lines.append(f"  {tag}: " + "  ==  ".join(_describe(f, root) for f in group.files))
    lines.append("")
    lines.append(
        "clean: no problems found"
        if report.clean
        else f"found {plural(report.num_problems, 'problem')}: fix or remove the files listed above"
    )
    if report.num_classes >= 2:  # only a folder of class folders has labels to question
        lines.append(
            f"next: `scenes data issues {root}` ranks the training images whose label looks "
            "wrong (exact copies are only the visible part of label noise)"
        )
    return "\n".join(lines)


def run_check(directory: str) -> int:
    """Exit code 0 when the folder is clean, 1 when problems were found (pipeline gate)."""
    report = check_folder(directory)
    print(format_report(report))
    return 0 if report.clean else 1


def folder_stats(root: str | Path) -> dict[str, Counter]:
    """Split -> Counter of image files per class (None for unlabelled images)."""
    stats: dict[str, Counter] = {}
    for file in iter_files(root):
        if has_image_extension(file.path):
            stats.setdefault(file.split, Counter())[file.label] += 1
    if not stats:
        raise DataError(f"{root} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return stats


def format_stats(stats: dict[str, Counter]) -> str:
    classes = sorted({c for counts in stats.values() for c in counts}, key=lambda c: (c is None, c))
    names = [c if c is not None else "(unlabelled)" for c in classes]
    width = max(5, *(len(n) for n in names))
    splits = list(stats)
    lines = [f"{'class':<{width}} " + " ".join(f"{s:>9}" for s in splits) + f" {'total':>9}"]
    for cls, name in zip(classes, names):
        counts = [stats[s].get(cls, 0) for s in splits]
        lines.append(
            f"{name:<{width}} " + " ".join(f"{n:>9}" for n in counts) + f" {sum(counts):>9}"
        )
    totals = [sum(stats[s].values()) for s in splits]
    lines.append(
        f"{'total':<{width}} " + " ".join(f"{n:>9}" for n in totals) + f" {sum(totals):>9}"
    )
    return "\n".join(lines)


def run_stats(directory: str) -> int:
    print(format_stats(folder_stats(directory)))
    return 0
