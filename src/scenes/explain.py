"""``scenes explain``: where in each photo the model saw its class, as figures.

Per image: the photo as the model saw it, the class-activation map of the top class (or
``--class``) and the two blended, captioned with the top-3; plus grid pages of the blends.
The maps come from ``cam`` (pytorch-grad-cam), the classes from the ``Predictor``, so an
explanation never disagrees with ``scenes predict``.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .cam import DEFAULT_METHOD, cam_class, overlay
from .console import plural
from .csvfile import SafeWriter, restore
from .errors import MissingPathError, UsageError
from .outputs import output_dir
from .predict import Prediction, Predictor, Source, collect_images

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


@dataclass
class Explanation:
    source: str
    image: np.ndarray  # (H, W, 3) uint8, the photo as the model saw it
    heatmap: np.ndarray  # (H, W) float32 in [0, 1]
    class_name: str  # the class the heatmap is for
    top: Prediction  # [(label, probability), ...] best first

    def overlay(self, image_weight: float = 0.5) -> np.ndarray:
        return overlay(self.image, self.heatmap, image_weight)


def explain_batch(
    predictor: Predictor,
    pixels: np.ndarray,
    sources: Sequence[str],
    class_name: str | None = None,
    top_k: int = 3,
    method: str = DEFAULT_METHOD,
    target_layer: str | None = None,
) -> list[Explanation]:
    """Explanations of decoded uint8 (B, H, W, 3) images (see ``Predictor.explain_pixels``)."""
    tops, classes, maps = predictor.explain_pixels(pixels, class_name, top_k, method, target_layer)
    return [
        Explanation(str(s), image, heat, predictor.class_names[i], top)
        for s, image, heat, i, top in zip(sources, pixels, maps, classes, tops, strict=True)
    ]


def explain_image(
    predictor: Predictor,
    image: Source,
    class_name: str | None = None,
    top_k: int = 3,
    method: str = DEFAULT_METHOD,
    target_layer: str | None = None,
) -> Explanation:
    """One photo (a path or a PIL image). Raises for an unreadable image."""
    pixels = predictor.load_image(image)[None]
    name = str(image) if isinstance(image, str | Path) else "<image>"
    return explain_batch(predictor, pixels, [name], class_name, top_k, method, target_layer)[0]


def caption(explanation: Explanation) -> str:
    return "   ".join(f"{label} {p:.2f}" for label, p in explanation.top)


def grid_names(count: int) -> list[str]:
    pages = -(-count // GRID_CELLS) if count > 1 else 0
    return ["grid.png"] if pages == 1 else [f"grid-{n:02d}.png" for n in range(1, pages + 1)]


def figure_name(source: str, used: set[str]) -> str:
    """``<stem>.png``, numbered when taken (two folders with the same file name, a photo
    called grid.jpg)."""
    stem = Path(source).stem
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def write_figure(explanation: Explanation, path: Path, method: str, layer: str) -> Path:
    from . import figures

    title = (
        f"{Path(explanation.source).name}: {caption(explanation)}\n"
        f"heatmap of {explanation.class_name} ({method} on layer {layer})"
    )
    return figures.plot_explanation(
        explanation.image, explanation.heatmap, explanation.overlay(), title, path
    )


def write_grids(
    blends: Sequence[np.ndarray], captions: Sequence[str], out_dir: Path, title: str
) -> list[Path]:
    """Pages of up to 16 blended images (none for a single image)."""
    from . import figures

    names = grid_names(len(blends))
    written = []
    for number, name in enumerate(names, 1):
        cells = slice((number - 1) * GRID_CELLS, number * GRID_CELLS)
        page = f", page {number} of {len(names)}" if len(names) > 1 else ""
        written.append(
            figures.plot_image_grid(blends[cells], captions[cells], out_dir / name, title + page)
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
    method: str = DEFAULT_METHOD,
    target_layer: str | None = None,
    out: str | None = None,
    batch_size: int = 16,
    device: str = "auto",
) -> int:
    cam_class(method)  # an unknown method fails before any model is loaded
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if out is not None:
        output_dir(out)
    files = collect_images(paths)
    if not files:
        raise MissingPathError(f"no image files in {', '.join(paths)}")
    predictor = Predictor.load(run, device=device)
    if class_name is not None:
        predictor.class_index(class_name)
    layer = predictor.explainer(method, target_layer).target.layer
    from .evaluation import run_dir_of

    out_dir = Path(out) if out else run_dir_of(run) / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_earlier_call(out_dir)
    used = set(grid_names(len(files)))
    written: list[Path] = []
    blends, captions, lines, failed = [], [], [], {}
    width = max(len(str(f)) for f in files)
    bar = tqdm(
        total=len(files),
        unit="img",
        desc="explaining",
        disable=not (sys.stderr.isatty() or len(files) > 50),
    )
    with (out_dir / INDEX_CSV).open("w", newline="") as fh:
        index = SafeWriter(fh)
        index.writerow(INDEX_COLUMNS)
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            pixels, ok, errors = predictor.load_images(chunk)
            for i, message in errors.items():
                failed[str(chunk[i])] = message
                lines.append(f"{str(chunk[i]):<{width}}  ERROR {message}")
                index.writerow([str(chunk[i]), "", "", *[""] * 6, message])
            sources = [str(chunk[i]) for i in ok]
            found = (
                explain_batch(predictor, pixels, sources, class_name, 3, method, target_layer)
                if ok
                else []
            )
            for explanation in found:
                path = out_dir / figure_name(explanation.source, used)
                written.append(write_figure(explanation, path, method, layer))
                blends.append(explanation.overlay())
                captions.append(grid_caption(explanation))
                top = [cell for pair in explanation.top for cell in pair]
                top += [""] * (6 - len(top))  # fewer than 3 classes
                index.writerow([explanation.source, path.name, explanation.class_name, *top, ""])
                lines.append(
                    f"{explanation.source:<{width}}  {explanation.class_name:<12} "
                    f"{caption(explanation)}"
                )
            fh.flush()
            bar.update(len(chunk))
    bar.close()
    heatmap_of = f"class {class_name}" if class_name else "the top class"
    written += write_grids(blends, captions, out_dir, f"Heatmaps ({method}) of {heatmap_of}")
    print(f"{'path':<{width}}  heatmap of   top-3")
    print("\n".join(lines))
    print(
        f"wrote {plural(len(written), 'figure')} and {INDEX_CSV} to {out_dir} "
        f"({method} on layer {layer})" + (f"; {len(failed)} unreadable" if failed else "")
    )
    return 0 if blends else 1


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
