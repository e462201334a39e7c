"""``scenes data check DIR --near``: exact and near-duplicate groups, with a CSV and a figure.

The exact check (``data.check``) runs first, as without --near. Then every readable image is
embedded and hashed (``models.near``) and the photos that its test calls near are grouped
(connected components: a chain of near copies is one group; on the whole Intel split the
test is tight enough that no chain joins different scenes, docs/results.md).
``duplicates.csv`` lists every member of every group; ``duplicates.png`` shows the top groups
side by side, one per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import replacing
from ..console import plural
from ..csvfile import SafeWriter
from ..data.check import CheckReport, DataFile, check_folder, format_report, iter_files
from ..data.files import has_image_extension
from ..errors import UsageError
from ..models.near import (
    HASH_WEIGHT,
    NEAR_DISTANCE,
    embed_files,
    group_pairs,
    near_backbone,
    near_distance,
    near_pairs,
)

COLUMNS = ["group", "path", "split", "label", "kind", "distance", "conflict"]
# A 4 x 4 grid, always full (blank cells): plot_image_grid shapes a grid by the image count,
# and only a full one keeps one group per row.
FIGURE_GROUPS = 4  # rows of the figure
FIGURE_MEMBERS = 4  # photos shown per group


@dataclass
class NearGroup:
    files: list[DataFile]
    kinds: list[str]  # "exact" when another member has the same bytes, else "near"
    digests: list[str]  # each member's content digest (equal bytes, equal digest)
    distances: list[float]  # near distance (models.near) to the group's first member

    @property
    def across_splits(self) -> bool:
        return len({f.split for f in self.files}) > 1

    @property
    def conflict(self) -> bool:
        return len({f.label for f in self.files if f.label is not None}) > 1


def readable_images(report: CheckReport) -> list[DataFile]:
    broken = set(report.corrupt) | set(report.non_images)
    return [
        f for f in iter_files(report.root) if has_image_extension(f.path) and f.path not in broken
    ]


def find_near_groups(files: list[DataFile], cache_dir: Path | None, threshold: float):
    embedded = embed_files([f.path for f in files], near_backbone(), cache_dir)
    pairs = near_pairs(embedded.features, embedded.bits, threshold)
    groups = []
    for members in group_pairs(len(embedded.kept), pairs):
        digests = [embedded.digests[m] for m in members]
        first = [members[0]] * len(members)
        distances = near_distance(
            embedded.features[members],
            embedded.features[first],
            embedded.bits[members],
            embedded.bits[first],
        )
        groups.append(
            NearGroup(
                files=[files[embedded.kept[m]] for m in members],
                kinds=["exact" if digests.count(d) > 1 else "near" for d in digests],
                digests=digests,
                distances=[float(d) for d in distances],
            )
        )
    # Conflicts first (they are label errors for sure), then the largest groups.
    return sorted(groups, key=lambda g: (not g.conflict, -len(g.files)))


def write_duplicates_csv(groups: list[NearGroup], root: Path, path: Path) -> Path:
    with replacing(path) as fh:
        writer = SafeWriter(fh)
        writer.writerow(COLUMNS)
        for number, group in enumerate(groups, 1):
            for file, kind, distance in zip(group.files, group.kinds, group.distances):
                writer.writerow(
                    [
                        number,
                        str(_relative(file.path, root)),
                        file.split,
                        file.label or "",
                        kind,
                        f"{distance:.4f}",
                        str(group.conflict).lower(),
                    ]
                )
    return path


def draw_groups(groups: list[NearGroup], root: Path, path: Path) -> Path | None:
    """The top groups, one per row, each photo captioned with its split, label and distance."""
    from PIL import Image

    from ..plots import plot_image_grid

    shown = groups[:FIGURE_GROUPS]
    if not shown:
        return None
    images, captions = [], []
    for number in range(1, FIGURE_GROUPS + 1):
        group = shown[number - 1] if number <= len(shown) else None
        for i in range(FIGURE_MEMBERS):
            if group is not None and i < len(group.files):
                file = group.files[i]
                with Image.open(file.path) as image:
                    images.append(np.asarray(image.convert("RGB").resize((150, 150))))
                where = f"{file.split}/{file.label}" if file.label else file.split
                captions.append(f"#{number} {where} d={group.distances[i]:.3f}")
            else:
                images.append(np.full((150, 150, 3), 255, np.uint8))
                captions.append("")
    title = "near-duplicate groups, one per row\n(d: near distance to the row's first photo)"
    return plot_image_grid(images, captions, path, title=title, columns=FIGURE_MEMBERS)


def summary(groups: list[NearGroup], root: Path, shown: int = 10) -> str:
    across = sum(g.across_splits for g in groups)
    conflicts = sum(g.conflict for g in groups)
    near = sum("near" in g.kinds for g in groups)
    lines = [
        f"exact and near-duplicate groups (near distance <= {NEAR_DISTANCE}: cosine distance "
        f"of ImageNet MobileNetV2 features + {HASH_WEIGHT} x the fraction of pHash bits that "
        f"differ): "
        f"{plural(len(groups), 'group')} ({near} with a near copy), "
        f"{len(groups) - across} within a split, {across} across splits, "
        f"{conflicts} with conflicting labels"
    ]
    for group in groups[:shown]:
        tag = "LABEL CONFLICT" if group.conflict else "near-duplicates"
        if group.across_splits:
            tag += ", across splits"
        names = "  ~  ".join(
            f"{_relative(f.path, root)} [{f.split}{'/' + f.label if f.label else ''}]"
            for f in group.files
        )
        lines.append(f"  {tag}: {names}")
    if len(groups) > shown:
        lines.append(f"  ... {len(groups) - shown} more in duplicates.csv")
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def run_check(directory: str, near: bool = False, out: str | None = None) -> int:
    """``data check``; with ``near`` also the near-duplicate groups. Exit code 1 when problems
    or near-duplicate groups were found."""
    from ..data.check import run_check as exact_check

    if not near:
        if out is not None:
            raise UsageError("--out is where --near writes duplicates.csv: add --near")
        return exact_check(directory)
    from ..config import default_cache_dir

    report = check_folder(directory)
    print(format_report(report))
    root = Path(directory)
    groups = find_near_groups(readable_images(report), default_cache_dir(), NEAR_DISTANCE)
    out_dir = Path(out) if out else Path("near_duplicates") / root.resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_duplicates_csv(groups, root, out_dir / "duplicates.csv")
    figure = draw_groups(groups, root, out_dir / "duplicates.png")
    print("")
    print(summary(groups, root))
    print(f"wrote {csv_path}" + (f" and {figure}" if figure else ""))
    return 0 if report.clean and not groups else 1
