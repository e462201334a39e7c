"""What a study leaves beside ``study.db``: ``trials.csv``, ``best.yaml``, Optuna's figures
and a printed summary. Written after every session, interrupted ones included."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import yaml

from ..atomic import replacing, write_text
from ..csvfile import SafeWriter
from ..rundir import RunDir
from .space import Dimension

log = logging.getLogger(__name__)

FIGURES = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "slice": "plot_slice",
    "intermediate_values": "plot_intermediate_values",
}


def write_outputs(study, out_dir: Path, objective: str, dimensions: list[Dimension]) -> None:
    trials = study.get_trials(deepcopy=False)
    write_trials_csv(trials, out_dir / "trials.csv", objective, dimensions)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if not complete:
        print(f"\nno trial has finished yet: {out_dir / 'trials.csv'} lists them")
        return
    best = study.best_trial
    best_yaml = write_best_yaml(best, out_dir / "best.yaml")
    figures = write_figures(study, out_dir / "figures", len(complete))
    importances = importance_lines(study, len(complete))
    pruned = sum(t.state.name == "PRUNED" for t in trials)
    print(
        f"\n{len(complete)} complete, {pruned} pruned of {len(trials)} trials; best: trial "
        f"{best.number}, {objective} {best.value:.4f} (epoch {best.user_attrs.get('best_epoch')})\n"
        + "\n".join(f"  {k} = {v}" for k, v in best.params.items())
        + (f"\nimportance of each parameter (fANOVA):\n{importances}" if importances else "")
        + f"\nbest run: {best.user_attrs.get('run_dir')}\n"
        f"trials: {out_dir / 'trials.csv'}\n"
        + (f"its config: {best_yaml}  (scenes train --config {best_yaml})\n" if best_yaml else "")
        + (
            f"figures: {', '.join(p.name for p in figures)} in {out_dir / 'figures'}"
            if figures
            else ""
        )
    )


def write_trials_csv(trials, path: Path, objective: str, dimensions: list[Dimension]) -> None:
    fields = [d.field for d in dimensions]
    extra = sorted({k for t in trials for k in t.params} - set(fields))  # from an older space
    columns = [
        "trial",
        "state",
        objective,
        "best_epoch",
        "pruned_epoch",
        "duration_s",
        *fields,
        *extra,
        "run_dir",
    ]
    with replacing(path, "w") as fh:
        writer = SafeWriter(fh)
        writer.writerow(columns)
        for t in trials:
            took = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow(
                [
                    t.number,
                    t.state.name.lower(),
                    "" if t.value is None else t.value,
                    t.user_attrs.get("best_epoch", ""),
                    t.user_attrs.get("pruned_epoch", ""),
                    "" if took == "" else round(took, 1),
                    *(t.params.get(k, "") for k in fields + extra),
                    t.user_attrs.get("run_dir", ""),
                ]
            )


def write_best_yaml(best, path: Path) -> Path | None:
    """The best trial's own config.yaml (exactly what it trained), with ``out`` cleared so
    that ``scenes train --config best.yaml`` makes a new run."""
    config = RunDir(best.user_attrs.get("run_dir", "")).config
    if not config.is_file():
        log.warning("the best trial's %s is missing: best.yaml not written", config)
        return None
    tree = yaml.safe_load(config.read_text())
    tree["out"] = None
    header = (
        f"# scenes tune: best trial {best.number}, {best.value:.4f}; "
        f"reproduce with: scenes train --config {path.name}\n"
    )
    write_text(path, header + yaml.safe_dump(tree, sort_keys=False))
    return path


def write_figures(study, folder: Path, complete: int) -> list[Path]:
    """Optuna's matplotlib figures; each needs enough trials to say something."""
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever the user's default backend
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in FIGURES.items():
        if name in ("param_importances", "slice") and complete < 2:
            continue
        path = folder / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = getattr(vis, function)(study)
        except (ValueError, RuntimeError) as exc:  # e.g. one parameter never varied
            log.warning("%s: not drawn (%s)", path.name, exc)
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.set_size_inches(max(figure.get_size_inches()[0], 8), 5)
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def importance_lines(study, complete: int) -> str:
    if complete < 2:
        return ""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):
        return ""
    return "\n".join(f"  {k}: {v:.2f}" for k, v in importances.items())
