"""``scenes report RUN_DIR``: one Markdown page that tells the story of a run.

The model and recipe, the per-epoch table, the best epoch, every figure, and the evaluation
results (RUN/eval/*/metrics.json) when there are any. Links are relative, so the page renders
on GitHub or in any Markdown viewer next to the run's files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from ..atomic import write_text
from ..errors import RunDirError
from ..models.bundle import META_FILE, read_meta
from ..rundir import FIGURE_TITLES, RunDir
from .outputs import CONFUSION_MATRIX, ERROR_GRID, METRICS_JSON, PREDICTIONS_CSV, RELIABILITY

METRIC_FORMATS = {"epoch": "{:.0f}", "time_s": "{:.1f}", "lr": "{:.2e}"}


def _fmt(key: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return METRIC_FORMATS.get(key, "{:.4f}").format(value)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _model_section(run_dir: Path, config: dict) -> list[str]:
    lines = []
    bundle = RunDir(run_dir).bundle
    if (bundle / META_FILE).is_file():
        meta = read_meta(bundle)  # validated: refused, naming the field, when it cannot be right
        lines.append(
            f"Model `{meta.model_name}` at {meta.image_size} px ({meta.resize}), "
            f"{meta.num_classes} classes ({meta.task}): {', '.join(meta.class_names)}. "
            "Deployable bundle: [`model/`](model/)."
        )
        lines += ["", *fitted_text(meta)]
    if config:
        data, train, augment = (config.get(k, {}) for k in ("data", "train", "augment"))
        lines += [""] if lines else []
        lines.append(
            f"Recipe: {train.get('epochs')} epochs max, lr {train.get('lr')}, "
            f"batch {data.get('batch_size')}, scheduler {train.get('scheduler')}, "
            f"mode {train.get('mode')}, augmentation {augment.get('preset')}, "
            f"validation fraction {data.get('val_fraction')}, seed {config.get('seed')}."
        )
        lines += [
            "",
            "<details><summary>config.yaml</summary>",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False).rstrip(),
            "```",
            "",
            "</details>",
        ]
    return lines


def fitted_text(meta) -> list[str]:
    """What the bundle carries beside its weights: the training options that shaped it, and
    what was fitted on the validation split after training."""
    said = []
    if meta.training:
        options = ", ".join(f"{k} {v}" for k, v in meta.training.items())
        said.append(f"Trained with: {options}.")
    if meta.temperature != 1.0:
        said.append(
            f"Temperature scaling: logits divided by {meta.temperature:.3f} (fitted on the "
            "validation split), so the probabilities served are calibrated."
        )
    if meta.thresholds:
        pairs = ", ".join(f"{n} {t:.2f}" for n, t in zip(meta.class_names, meta.thresholds))
        said.append(f"Per-class thresholds (best validation F1 of each class): {pairs}.")
    if meta.acceptance is not None:
        said.append(
            f"'None of the known classes': a photo whose {meta.acceptance.k}-NN distance to "
            f"the training features exceeds {meta.acceptance.threshold:.4f} is not accepted "
            f"(the threshold accepts {meta.acceptance.accept_rate:.0%} of the validation photos)."
        )
    return [" ".join(said)] if said else []


def _epochs_section(columns: dict[str, list[float]], monitor: str, best_epoch: int) -> list[str]:
    best = columns["epoch"].index(best_epoch)
    keys = list(columns)
    rows = []
    for i in range(len(columns["epoch"])):
        cells = [_fmt(k, columns[k][i]) for k in keys]
        if i == best:
            cells = [f"**{c}**" for c in cells]
        rows.append(cells)
    b = {k: columns[k][best] for k in keys}
    summary = (
        f"Best epoch: **{b['epoch']:.0f}** of {len(rows)} (by {monitor}): "
        f"validation top-1 {_fmt('val_acc', b.get('val_acc', math.nan))}, "
        f"macro F1 {_fmt('val_f1', b.get('val_f1', math.nan))}, "
        f"loss {_fmt('val_loss', b.get('val_loss', math.nan))}. "
        "The model bundle holds this epoch's weights."
    )
    return ["## Training", "", summary, "", *markdown_table(keys, rows)]


def _figures_section(run_dir: Path) -> list[str]:
    folder = RunDir(run_dir).figures
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    # Known figures first, in story order; anything else a user dropped in after them.
    order = list(FIGURE_TITLES)
    pngs.sort(key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
    lines = ["## Figures", ""]
    if not pngs:
        return [*lines, "No figures in `figures/`."]
    for png in pngs:
        title = FIGURE_TITLES.get(png.name, png.stem.replace("_", " ").capitalize())
        lines += [f"### {title}", "", f"![{title}](figures/{png.name})", ""]
    return lines


def _evaluation_section(run_dir: Path) -> list[str]:
    results = sorted(RunDir(run_dir).eval.glob(f"*/{METRICS_JSON}"))
    if not results:
        return [
            "## Evaluation",
            "",
            "Not evaluated yet: `scenes evaluate --run RUN_DIR --split val` "
            "(or `--data TEST_DIR`), then `scenes report --run RUN_DIR` again.",
        ]
    lines = ["## Evaluation", ""]
    for path in results:
        m = json.loads(path.read_text())
        folder = path.parent.relative_to(run_dir).as_posix()
        lines += [f"### `{folder}`", "", headline(m), ""]
        if m.get("task") == "multilabel":
            columns = ["ap", "precision", "recall", "f1", "tp", "fp", "fn", "tn"]
        else:
            columns = ["precision", "recall", "f1", "support"]
        rows = [[name, *(number_text(c[k]) for k in columns)] for name, c in m["per_class"].items()]
        lines += [*markdown_table(["class", *columns], rows), ""]
        for name, title in (
            (CONFUSION_MATRIX, "Confusion matrix"),
            (ERROR_GRID, "Most confident mistakes"),
            (RELIABILITY, "Reliability (calibration)"),
        ):
            if (path.parent / name).is_file():
                lines += [f"![{title}]({folder}/{name})", ""]
        if (path.parent / PREDICTIONS_CSV).is_file():
            link = f"{folder}/{PREDICTIONS_CSV}"
            lines += [
                f"Every prediction: [`{link}`]({link})",
                "",
            ]
    return lines


def number_text(value) -> str:
    return str(value) if isinstance(value, int) else _fmt("", float(value))


def headline(m: dict) -> str:
    where = (
        f"{m['num_images']} images from `{m['source']}`"
        + (", TTA (image + horizontal flip)" if m.get("tta") else "")
        + (f", {m['num_skipped']} unreadable skipped" if m.get("num_skipped") else "")
    )
    if m.get("task") == "multilabel":
        text = (
            f"{where}: **mean average precision {m['map']:.4f}**, micro F1 "
            f"{m['micro_f1']:.4f}, macro F1 {m['macro_f1']:.4f} (at each class's threshold)."
        )
    else:
        text = f"{where}: **top-1 accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}**"
        if "balanced_accuracy" in m:
            text += f", balanced accuracy {m['balanced_accuracy']:.4f}"
        if "ece" in m:
            text += f"; expected calibration error {m['ece']:.4f}"
            if m.get("temperature", 1.0) != 1.0:
                text += f" ({m['ece_uncalibrated']:.4f} before temperature scaling)"
        text += "."
    if m.get("accepted_share") is not None:
        text += f" Accepted as one of the known classes: {m['accepted_share']:.1%}."
    if m.get("near_duplicates_of_training"):
        without = m.get("accuracy_without_near_duplicates")
        text += (
            f" **Warning: {m['near_duplicates_of_training']} of these images are near-duplicates "
            "of the run's training images; a score on them is not a test score**"
            + (f" (top-1 accuracy without them {without:.4f})." if without is not None else ".")
        )
    return text


def write_report(run_dir: str | Path) -> Path:
    """``RUN/report.md``; ``run_dir`` may also be the run's ``model/`` folder."""
    run = RunDir(run_dir)
    if not run.holds_a_run() and RunDir(run.path.parent).holds_a_run():
        run = RunDir(run.path.parent)  # given RUN/model: the run that holds it
    run_dir = run.path
    columns = run.metrics_by_column()  # MissingPathError naming metrics.csv when it is absent
    if not columns:
        raise RunDirError(f"{run.metrics_csv} has no epochs yet: train for at least one epoch")
    config_file = run.config
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    monitor = (config or {}).get("train", {}).get("monitor", "val_loss")
    if monitor not in columns:
        monitor = "val_loss"
    lines = [
        f"# Run `{run_dir.resolve().name}`",
        "",
        *_model_section(run_dir, config or {}),
        "",
        *_epochs_section(columns, monitor, run.best_epoch),
        "",
        *_figures_section(run_dir),
        "",
        *_evaluation_section(run_dir),
    ]
    report = run.report
    write_text(report, "\n".join(lines).rstrip() + "\n")
    return report


def run_report(run: str | None = None, run_dir: str | None = None) -> int:
    path = write_report(run or run_dir)
    print(f"report written to {path}")
    return 0
