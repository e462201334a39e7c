"""``scenes compare RUN RUN...``: runs side by side, as Markdown.

One table (model, the recipe fields that differ between the runs, best epoch, validation
metrics of that epoch, training time, and every ``scenes evaluate`` result), the training
curves of all runs overlaid (one figure per metric) and per-class F1 side by side for each
evaluation the runs share. Works on tune trials: ``scenes compare DIR/trials/*``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import console
from ..atomic import write_text
from ..errors import RunDirError, UsageError
from ..overrides import dotted
from ..plots import draw_safely, plot_compared_classes, plot_compared_curves
from ..rundir import RunDir, lower_is_better
from .outputs import METRICS_JSON
from .report import markdown_table

# Fields that differ between any two runs and say nothing about the recipe.
NOT_RECIPE = {"out", "data.cache_dir", "train.progress_bar", "data.num_workers"}
HEADLINE = {"val_acc": "val top-1", "val_f1": "val macro F1", "val_map": "val mAP"}


@dataclass
class ComparedRun:
    name: str  # as the user named it
    run: RunDir
    config: dict  # config.yaml, flattened to dotted keys
    epochs: dict[str, list[float]]  # metrics.csv as columns
    best_epoch: int
    evaluations: dict[str, dict]  # eval folder name -> metrics.json

    @property
    def best(self) -> dict[str, float]:
        i = self.epochs["epoch"].index(self.best_epoch)
        return {k: v[i] for k, v in self.epochs.items()}


def load_run(name: str) -> ComparedRun:
    run = RunDir(name)
    if not run.metrics_csv.is_file():
        raise RunDirError(
            f"{name}: no metrics.csv, so not a run directory of `scenes train` (or `scenes tune`'s "
            "DIR/trials/NNN)"
        )
    epochs = run.metrics_by_column()
    if not epochs:
        raise RunDirError(f"{run.metrics_csv} has no epochs yet")
    config = yaml.safe_load(run.config.read_text()) if run.config.is_file() else {}
    monitor = dotted(config or {}).get("train.monitor", "val_loss")
    if run.best_checkpoint.is_file():
        best_epoch = run.best_epoch
    else:  # a run whose checkpoints were deleted: the monitored metric's best epoch
        monitor = monitor if monitor in epochs else "val_loss"
        values = epochs[monitor]
        pick = min if lower_is_better(monitor) else max
        best_epoch = int(epochs["epoch"][values.index(pick(values))])
    if best_epoch not in epochs["epoch"]:
        raise RunDirError(f"{name}: the best checkpoint's epoch {best_epoch} is not in metrics.csv")
    evaluations = {
        path.parent.name: json.loads(path.read_text())
        for path in sorted(run.eval.glob(f"*/{METRICS_JSON}"))
    }
    return ComparedRun(name, run, dotted(config or {}), epochs, best_epoch, evaluations)


def differing_fields(runs: list[ComparedRun]) -> list[str]:
    keys = sorted({k for r in runs for k in r.config} - NOT_RECIPE)
    return [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]


def number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary_table(runs: list[ComparedRun]) -> list[str]:
    fields = [f for f in differing_fields(runs) if f != "model.name"]
    metrics = [m for m in HEADLINE if any(m in r.epochs for r in runs)]
    evals = sorted({name for r in runs for name in r.evaluations})
    header = ["run", "model", *fields, "best epoch", *(HEADLINE[m] for m in metrics)]
    header += ["training time", "bundle MB", *(f"eval `{e}`" for e in evals)]
    rows = []
    for r in runs:
        seconds = sum(r.epochs.get("time_s", []))
        rows.append(
            [
                f"`{r.name}`",
                f"`{r.config.get('model.name', '?')}`",
                *(setting(r.config.get(f)) for f in fields),
                f"{r.best_epoch} of {len(r.epochs['epoch'])}",
                *(number(r.best.get(m)) for m in metrics),
                console.duration(seconds),
                bundle_megabytes(r.run),
                *(evaluation_text(r.evaluations.get(e)) for e in evals),
            ]
        )
    return markdown_table(header, rows)


def bundle_megabytes(run: RunDir) -> str:
    """The weights the bundle serves (every member of an ensemble): what a deployment ships."""
    files = list(run.bundle.rglob("*.safetensors")) if run.bundle.is_dir() else []
    return f"{sum(f.stat().st_size for f in files) / 2**20:.1f}" if files else "–"


def setting(value) -> str:
    """A config value as the recipe reads: 0.002369, classic, [a, b]."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "null" if value is None else str(value)


def evaluation_text(m: dict | None) -> str:
    if m is None:
        return "–"
    if m.get("task") == "multilabel":
        return f"mAP {m['map']:.4f}, F1 {m['macro_f1']:.4f} ({m['num_images']} images)"
    return f"top-1 {m['accuracy']:.4f}, F1 {m['macro_f1']:.4f} ({m['num_images']} images)"


def per_class_tables(runs: list[ComparedRun]) -> tuple[list[str], dict[str, dict]]:
    """Per-class F1 side by side for each evaluation folder every run has."""
    shared = set.intersection(*(set(r.evaluations) for r in runs)) if runs else set()
    lines, scores = [], {}
    for name in sorted(shared):
        per_run = {
            r.name: {c: v["f1"] for c, v in r.evaluations[name]["per_class"].items()} for r in runs
        }
        classes = list(next(iter(per_run.values())))
        rows = [[c, *(number(per_run[r.name].get(c)) for r in runs)] for c in classes]
        lines += [f"### Per-class F1, `eval/{name}`", ""]
        lines += [*markdown_table(["class", *(f"`{r.name}`" for r in runs)], rows), ""]
        scores[name] = per_run
    if not shared:
        lines += [
            "No evaluation that every run has: `scenes evaluate --run RUN --split val` on each "
            "adds per-class F1 side by side.",
            "",
        ]
    return lines, scores


def compare_markdown(names: list[str], figures_dir: Path | None) -> str:
    if len(names) < 2:
        raise UsageError("scenes compare needs two or more runs")
    runs = [load_run(n) for n in names]
    lines = [f"# {len(runs)} runs compared", "", *summary_table(runs), ""]
    lines.append(
        "Validation metrics are those of each run's best epoch (the one its bundle holds); "
        "training time sums the epochs of metrics.csv."
    )
    lines.append("")
    if len({json.dumps(r.config.get("data.dir")) for r in runs}) > 1:
        lines += ["Note: the runs were trained on different data folders.", ""]
    class_lines, scores = per_class_tables(runs)
    lines += class_lines
    if figures_dir is not None:
        lines += figure_lines(runs, scores, figures_dir)
    return "\n".join(lines).rstrip() + "\n"


def figure_lines(runs: list[ComparedRun], scores: dict[str, dict], folder: Path) -> list[str]:
    metrics = [c for c in runs[0].epochs if c not in ("epoch", "time_s", "lr")]
    jobs = []
    for metric in metrics:
        curves = {r.name: (r.epochs["epoch"], r.epochs[metric]) for r in runs if metric in r.epochs}
        jobs.append((f"{metric}.png", lambda p, c=curves, m=metric: plot_compared_curves(c, m, p)))
    for name, per_run in scores.items():
        classes = list(next(iter(per_run.values())))
        title = f"Per-class F1 (eval/{name})"
        jobs.append(
            (
                f"per_class_f1_{name}.png",
                lambda p, s=per_run, c=classes, t=title: plot_compared_classes(s, c, t, p),
            )
        )
    written = draw_safely(folder, jobs)
    lines = ["## Figures", ""]
    for path in written:
        lines += [f"![{path.stem}]({folder.name}/{path.name})", ""]
    return lines


def run_compare(runs: list[str], out: str | None) -> int:
    if out is None:
        print(compare_markdown(runs, None), end="")
        return 0
    path = Path(out)
    if path.suffix.lower() != ".md":
        raise UsageError(f"--out {out}: give a Markdown file name ending in .md")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = compare_markdown(runs, path.with_name(f"{path.stem}_figures"))
    write_text(path, text)
    print(f"comparison written to {path} (figures in {path.with_name(path.stem + '_figures')})")
    return 0
