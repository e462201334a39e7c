"""``scenes explain``: where in each photo the model saw its class, as figures.

Per image: the photo as the model saw it, the class-activation map of the top class (or
``--class``) and the two blended, captioned with the top-3; plus grid pages of the blends.
The maps come from ``serve.heatmaps`` (pytorch-grad-cam), the classes from the ``Predictor``, so an
explanation never disagrees with ``scenes predict``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import plots
from ..atomic import replacing
from ..choices import DEFAULT_CAM_METHOD, EXPLAIN_BATCH
from ..console import plural, stage
from ..csvfile import SafeWriter, restore
from ..errors import MissingPathError, UsageError
from ..models.bundle import bundle_run_dir
from ..outputs import output_dir
from ..rundir import RunDir
from ..serve.heatmaps import Explanation, cam_class, explain_batch
from ..serve.predict import collect_images
from ..serve.predictor import Predictor

GRID_CELLS = 16  # images per grid page (4 x 4)
GRID_PAGE = re.compile(r"grid(-\d+)?\.png")
INDEX_CSV = "index.csv"  # one row per image: its figure, the heatmap's class, the top-3
INDEX_COLUMNS = [
    "path",
    "figure",
    "heatmap_of",
    "label_1",
    "prob_1",
    "label_2",
    "prob_2",
    "label_3",
    "prob_3",
    "error",
]


def caption(explanation: Explanation) -> str:
    return "   ".join(f"{label} {p:.2f}" for label, p in explanation.top)


def grid_names(count: int) -> list[str]:
    pages = -(-count // GRID_CELLS) if count > 1 else 0
    return ["grid.png"] if pages == 1 else [f"grid-{n:02d}.png" for n in range(1, pages + 1)]


def figure_name(source: str, used: set[str], suffix: str = "") -> str:
    """``<stem><suffix>.png``, numbered when taken (two folders with the same file name, a
    photo called grid.jpg)."""
    stem = Path(source).stem + suffix
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def write_figure(explanation: Explanation, path: Path, method: str, layer: str) -> Path:
    title = (
        f"{Path(explanation.source).name}: {caption(explanation)}\n"
        f"heatmap of {explanation.class_name} ({method} on layer {layer})"
    )
    return plots.plot_explanation(
        explanation.image, explanation.heatmap, explanation.overlay(), title, path
    )


def write_grids(
    blends: Sequence[np.ndarray], captions: Sequence[str], out_dir: Path, title: str
) -> list[Path]:
    """Pages of up to 16 blended images (none for a single image)."""
    names = grid_names(len(blends))
    written = []
    for number, name in enumerate(names, 1):
        cells = slice((number - 1) * GRID_CELLS, number * GRID_CELLS)
        page = f", page {number} of {len(names)}" if len(names) > 1 else ""
        written.append(
            plots.plot_image_grid(blends[cells], captions[cells], out_dir / name, title + page)
        )
    return written


def grid_caption(explanation: Explanation) -> str:
    top = explanation.top
    second = f" | {top[1][0]} {top[1][1]:.2f}" if len(top) > 1 else ""
    return f"{Path(explanation.source).name[:26]}\n{top[0][0]} {top[0][1]:.2f}{second}"


def run_explain(
    run: str,
    paths: list[str],
    class_name: str | None = None,
    method: str = DEFAULT_CAM_METHOD,
    target_layer: str | None = None,
    out: str | None = None,
    batch_size: int = EXPLAIN_BATCH,
    device: str = "auto",
    backend: str = "torch",
) -> int:
    cam_class(method)  # an unknown method fails before any model is loaded
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if out is not None:
        output_dir(out)
    files = collect_images(paths)
    if not files:
        raise MissingPathError(f"no image files in {', '.join(paths)}")
    predictor = Predictor.load(run, backend=backend, device=device)
    if class_name is not None:
        predictor.class_index(class_name)
    layer = predictor.explainer(method, target_layer).target.layer
    out_dir = Path(out) if out else RunDir(bundle_run_dir(run)).explain
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_earlier_call(out_dir)
    width = max(len(str(f)) for f in files)
    print(f"{'path':<{width}}  heatmap of   top-3")
    found = explain_files(
        predictor, files, out_dir, width, class_name, method, target_layer, batch_size
    )
    heatmap_of = f"class {class_name}" if class_name else "the top class"
    title = f"Heatmaps ({method}) of {heatmap_of}"
    written = found.figures + write_grids(found.blends, found.captions, out_dir, title)
    print(
        f"wrote {plural(len(written), 'figure')} and {INDEX_CSV} to {out_dir} "
        f"({method} on layer {layer})"
        + (f"; {plural(found.failed, 'file')} could not be read" if found.failed else "")
    )
    return 0 if found.blends else 1


@dataclass
class Explained:
    figures: list[Path] = field(default_factory=list)
    blends: list[np.ndarray] = field(default_factory=list)  # for the grid pages
    captions: list[str] = field(default_factory=list)
    failed: int = 0


def explain_files(
    predictor: Predictor,
    files: list[Path],
    out_dir: Path,
    width: int,
    class_name: str | None,
    method: str,
    target_layer: str | None,
    batch_size: int,
) -> Explained:
    """A figure per readable file and a row per file in index.csv, each line printed (and
    the index flushed) as its batch is done."""
    found = Explained()
    used = set(grid_names(len(files)))
    layer = predictor.explainer(method, target_layer).target.layer
    with (
        replacing(out_dir / INDEX_CSV) as fh,
        stage("explaining", len(files)) as bar,
    ):
        index = SafeWriter(fh)
        index.writerow(INDEX_COLUMNS)
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            pixels, ok, errors = predictor.load_images(chunk)
            for i, message in errors.items():
                found.failed += 1
                print(f"{str(chunk[i]):<{width}}  ERROR {message}")
                index.writerow([str(chunk[i]), "", "", *[""] * 6, message])
            sources = [str(chunk[i]) for i in ok]
            batch = explanations(predictor, pixels, sources, class_name, method, target_layer)
            multilabel = predictor.meta.task == "multilabel"
            for explanation in batch:
                suffix = f"-{explanation.class_name}" if multilabel else ""
                path = out_dir / figure_name(explanation.source, used, suffix)
                found.figures.append(write_figure(explanation, path, method, layer))
                found.blends.append(explanation.overlay())
                found.captions.append(grid_caption(explanation))
                top = [cell for pair in explanation.top for cell in pair]
                top += [""] * (6 - len(top))  # fewer than 3 classes
                index.writerow([explanation.source, path.name, explanation.class_name, *top, ""])
                print(
                    f"{explanation.source:<{width}}  {explanation.class_name:<12} "
                    f"{caption(explanation)}"
                )
            fh.flush()
            bar.update(len(chunk))
    return found


def explanations(
    predictor: Predictor,
    pixels: np.ndarray,
    sources: list[str],
    class_name: str | None,
    method: str,
    target_layer: str | None,
) -> list[Explanation]:
    """One explanation per image: of ``class_name``, or of its top class; a multi-label model
    gets one per predicted label (its top class when it predicts none)."""
    if not len(pixels):
        return []
    if class_name is not None or predictor.meta.task != "multilabel":
        return explain_batch(predictor, pixels, sources, class_name, 3, method, target_layer)
    found = predictor.answers(pixels)
    made = []
    for i, source in enumerate(sources):
        labels = found.prediction(i, 1).labels or [found.prediction(i, 1)[0][0]]
        for label in labels:
            made += explain_batch(
                predictor, pixels[i : i + 1], [source], label, 3, method, target_layer
            )
    return made


def clear_earlier_call(out_dir: Path) -> None:
    """Remove what an earlier ``explain`` wrote to ``out_dir`` (the figures its index.csv
    lists, its grid pages), so the folder shows this call's images only. Files it did not
    write are left alone; a name in the index is taken as a bare file name in the folder."""
    index = out_dir / INDEX_CSV
    if not index.is_file():
        return
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            name = Path(restore(row.get("figure") or "")).name
            if name.endswith(".png"):
                (out_dir / name).unlink(missing_ok=True)
    for page in out_dir.glob("grid*.png"):
        if GRID_PAGE.fullmatch(page.name):
            page.unlink()
    index.unlink()
