"""The model card (``README.md`` of a Hub folder), written from what the run folder records:
intended use, classes and their image counts, the training data and recipe, validation and
evaluation metrics with the per-class table, the confusion matrix, limitations (label issues
found, what the model cannot tell), and how to load it. Nothing in it is typed by hand: a run
without evaluations or label issues says so and names the command that adds them."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import yaml

from ..evaluation.outputs import CONFUSION_MATRIX, METRICS_JSON
from ..evaluation.report import fitted_text, headline, markdown_table, number_text
from ..label_issues.outputs import ISSUES_CSV
from ..models.meta import BundleMeta
from ..rundir import RunDir

LIBRARY = {"timm": "timm", "hf": "transformers", "torchvision": "scenes", "ensemble": "scenes"}


def model_card(run_dir: Path, meta: BundleMeta, out: Path) -> str:
    run = RunDir(run_dir)
    config = yaml.safe_load(run.config.read_text()) if run.config.is_file() else {}
    front = {
        "library_name": LIBRARY[meta.backend],
        "pipeline_tag": "image-classification",
        "tags": ["image-classification", "scenes", meta.backend, meta.task],
    }
    results = _hub_results(run, config or {})
    if results:
        front["model-index"] = [{"name": run.path.resolve().name, "results": results}]
    names = ", ".join(meta.class_names)
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {run.path.resolve().name}: {meta.task} image classifier ({meta.num_classes} classes)",
        "",
        "## Intended use",
        "",
        f"Tells which of these classes a photo shows: {names}"
        + (" (several may apply)." if meta.task == "multilabel" else "."),
        " ".join(fitted_text(meta)),
        "It knows nothing of other subjects: a photo of something else gets the nearest of "
        "these classes"
        + (
            " unless the acceptance check above turns it down."
            if meta.acceptance
            else " (this model has no check for unknown photos)."
        ),
        "",
        *_data_section(run, meta, config or {}),
        *_metrics_section(run, out),
        *_limitations_section(run),
        *_loading_section(meta),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _data_section(run: RunDir, meta: BundleMeta, config: dict) -> list[str]:
    lines = ["## Training data and recipe", ""]
    counts: dict[str, Counter] = {"train": Counter(), "val": Counter()}
    if run.split_csv.is_file():
        for row in run.read_split():
            if row.split in counts:
                counts[row.split].update(row.label.split() or ["(none)"])
    if sum(counts["train"].values()):
        total = {s: sum(c.values()) for s, c in counts.items()}
        lines.append(
            f"{total['train']:,} training and {total['val']:,} validation images (a stratified, "
            "seeded split of the training folder, in the run's `split.csv`)."
        )
        rows = [[n, str(counts["train"][n]), str(counts["val"][n])] for n in meta.class_names]
        lines += ["", *markdown_table(["class", "training images", "validation images"], rows)]
    data, train = config.get("data", {}), config.get("train", {})
    if config:
        lines += [
            "",
            f"Fine-tuned from ImageNet weights with scenes "
            f"(`{meta.model_name}`, {meta.image_size} px, resize {meta.resize}): "
            f"{train.get('epochs')} epochs max ({train.get('mode')}), optimizer "
            f"{train.get('optimizer')}, lr {train.get('lr')}, batch {data.get('batch_size')}, "
            f"augmentation {config.get('augment', {}).get('preset')}, seed {config.get('seed')}.",
        ]
    return [*lines, ""]


# The scores a run records, as the Hub's model-index names them (type, spelled out); the
# keys are metrics.csv's validation columns and metrics.json's fields.
HUB_METRICS = {
    "acc": ("accuracy", "top-1 accuracy"),
    "accuracy": ("accuracy", "top-1 accuracy"),
    "f1": ("f1", "macro F1"),
    "macro_f1": ("f1", "macro F1"),
    "map": ("map", "mean average precision"),
    "micro_f1": ("f1", "micro F1"),
}
HUB_AVERAGE = {"macro F1": "macro", "micro F1": "micro"}


def _best_validation(run: RunDir) -> tuple[int, dict[str, float]] | None:
    if not (run.metrics_csv.is_file() and run.best_checkpoint.is_file()):
        return None
    best = run.metrics_of_epoch(run.best_epoch)
    return run.best_epoch, {
        k.removeprefix("val_"): float(v) for k, v in best.items() if k.startswith("val_")
    }


def _evaluations(run: RunDir) -> list[tuple[str, dict]]:
    paths = sorted(run.eval.glob(f"*/{METRICS_JSON}")) if run.eval.is_dir() else []
    return [(path.parent.name, json.loads(path.read_text())) for path in paths]


def _hub_metrics(scores: dict) -> list[dict]:
    metrics = []
    for key, (kind, name) in HUB_METRICS.items():
        if isinstance(scores.get(key), (int, float)):
            metric = {"type": kind, "value": round(float(scores[key]), 4), "name": name}
            if name in HUB_AVERAGE:
                metric["args"] = {"average": HUB_AVERAGE[name]}
            metrics.append(metric)
    return metrics


def _hub_results(run: RunDir, config: dict) -> list[dict]:
    """The front matter's ``model-index`` results: the best epoch's validation scores and
    each evaluation's, each with its dataset and split, as the Hub reads them."""
    folder = (config.get("data") or {}).get("dir") or "training folder"
    dataset = Path(str(folder)).name or str(folder)
    task = {"type": "image-classification", "name": "Image Classification"}
    found = []
    best = _best_validation(run)
    if best is not None:
        found.append(("validation", f"{dataset} (validation split)", best[1]))
    for name, m in _evaluations(run):
        found.append((name, m.get("source") or name, m))
    results = []
    for split, source, scores in found:
        metrics = _hub_metrics(scores)
        if metrics:
            data = {"name": source, "type": "imagefolder", "split": split}
            results.append({"task": task, "dataset": data, "metrics": metrics})
    return results


def _metrics_section(run: RunDir, out: Path) -> list[str]:
    lines = ["## Metrics", ""]
    best = _best_validation(run)
    if best is not None:
        epoch, scores = best
        named = [
            f"{HUB_METRICS[k][1] if k in HUB_METRICS else k.replace('_', ' ')} {v:.4f}"
            for k, v in scores.items()
        ]
        lines.append(f"Validation, best epoch ({epoch}): " + ", ".join(named) + ".")
    results = _evaluations(run)
    if not results:
        lines += ["", "Not evaluated on a held-out folder yet (`scenes evaluate`)."]
    for name, m in results:
        lines += ["", f"### `{name}`", "", headline(m), ""]
        columns = ["precision", "recall", "f1", "support"]
        if m.get("task") == "multilabel":
            columns = ["ap", "precision", "recall", "f1"]
        rows = [[n, *(number_text(c[k]) for k in columns)] for n, c in m["per_class"].items()]
        lines += markdown_table(["class", *columns], rows)
        figure = run.eval / name / CONFUSION_MATRIX
        if figure.is_file():
            (out / "figures").mkdir(exist_ok=True)
            copy = f"{name}-{CONFUSION_MATRIX}"
            shutil.copyfile(figure, out / "figures" / copy)
            lines += ["", f"![confusion matrix, {name}](figures/{copy})"]
    return [*lines, ""]


def _limitations_section(run: RunDir) -> list[str]:
    lines = [
        "## Limitations",
        "",
        "Validation images come from the same collection as the training images; photos from "
        "another camera, place or time may score lower.",
    ]
    issues = run.label_issues / ISSUES_CSV
    if issues.is_file():
        with issues.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        lines.append(
            f"A label-issue scan (`scenes data issues`) ranked {len(rows):,} training images "
            "whose label looks wrong; the data may hold mislabelled photos."
        )
    else:
        lines.append(
            "No label-issue scan was run on its training data (`scenes data issues --run`)."
        )
    return [*lines, ""]


def _loading_section(meta: BundleMeta) -> list[str]:
    lines = [
        "## How to use",
        "",
        "With scenes (the same preprocessing, calibration and acceptance as in training):",
        "",
        "```python",
        "from scenes import Predictor",
        "",
        'predictor = Predictor.load("path/to/this/folder")',
        'predictor.predict("photo.jpg", top_k=3)',
        "```",
        "",
    ]
    if meta.backend == "timm":
        code = [
            "import timm",
            "",
            'model = timm.create_model("hf-hub:<user>/<repo>", pretrained=True).eval()',
            "config = timm.data.resolve_data_config({}, model=model)",
            "transform = timm.data.create_transform(**config)",
        ]
        lines += ["With timm:", "", "```python", *code, "```", ""]
    elif meta.backend == "hf":
        code = [
            "from transformers import AutoImageProcessor, AutoModelForImageClassification",
            "",
            'model = AutoModelForImageClassification.from_pretrained("<user>/<repo>")',
            'processor = AutoImageProcessor.from_pretrained("<user>/<repo>")',
        ]
        lines += ["With transformers:", "", "```python", *code, "```", ""]
    elif meta.backend == "ensemble":
        lines += [
            f"An ensemble ({meta.architecture}): one network that averages its members' "
            "probabilities, each member seeing the photo as it was trained to; it loads with "
            "scenes, as above.",
            "",
        ]
    else:
        arch = meta.architecture
        code = [
            "import torchvision",
            "from safetensors.torch import load_file",
            "",
            f"model = torchvision.models.{arch}(num_classes={meta.num_classes})",
            'model.load_state_dict(load_file("model.safetensors"))',
            f"# input: RGB resized to {meta.image_size}x{meta.image_size} ({meta.resize}), "
            f"scaled to [0, 1], normalised with mean {meta.mean} and std {meta.std}",
        ]
        lines += ["With torchvision:", "", "```python", *code, "```", ""]
    return lines
