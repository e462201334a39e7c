"""The options of ``scenes tune`` and ``scenes compare``."""

from __future__ import annotations

import argparse
import re

from .recipe_args import FLAGS, add_recipe_flags, add_set_option, recipe_overrides
from .types import positive

# A trial's folder is the study's DIR/trials/NNN: tune's --out is the study's folder.
NOT_RECIPE = ("--out",)
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m`` -> seconds."""
    import argparse

    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?[smhd]?\s*)+)", text)
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 30m or 2h, got {text!r}")
    seconds = sum(
        float(number) * DURATION_UNITS[unit or "s"]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", parts.group(1))
    )
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be above zero, got {text!r}")
    return seconds


def add_tune_parser(sub, common) -> None:
    p = sub.add_parser(
        "tune",
        help="search training parameters with Optuna, each trial a complete run",
        description="An Optuna study (TPE sampler seeded with the config's seed, median "
        "pruning on the per-epoch validation metric). Each trial trains into DIR/trials/NNN "
        "like `scenes train`; the study is kept in DIR/study.db, so running the command "
        "again continues it. Writes trials.csv, best.yaml (scenes train --config best.yaml "
        "reproduces the best trial) and figures/.",
    )
    common(p)
    p.add_argument(
        "--config", metavar="FILE", help="the recipe each trial starts from (default: none)"
    )
    add_recipe_flags(p, skip=NOT_RECIPE)  # the same recipe flags as scenes train's
    add_search_options(p)
    add_study_options(p)
    add_set_option(
        p,
        "any config field for every trial, e.g. --set train.epochs=2 (default: none)",
    )
    p.set_defaults(target=".tune.study:run_tune")


def add_search_options(p: argparse.ArgumentParser) -> None:
    """What is searched, for how long, and for which metric."""
    p.add_argument(
        "--space",
        metavar="FILE",
        help="the search space YAML (default: configs/tune_space.yaml)",
    )
    p.add_argument(
        "--trials",
        type=positive,
        default=20,
        metavar="N",
        help="finished (complete or pruned) trials the study should hold; a rerun runs the "
        "missing ones (default: 20)",
    )
    p.add_argument(
        "--timeout",
        type=duration,
        metavar="TIME",
        help="start no trial after this long, e.g. 2h or 45m; a running trial finishes "
        "(default: none)",
    )
    p.add_argument(
        "--objective",
        choices=["val_f1", "val_acc", "val_loss", "val_map"],
        default="val_f1",
        help="the validation metric of the best epoch to optimise; it is also each trial's "
        "train.monitor (default: val_f1)",
    )


def add_study_options(p: argparse.ArgumentParser) -> None:
    """Where the study lives and how its trials are judged."""
    p.add_argument(
        "--out", default="runs/tune", metavar="DIR", help="the study folder (default: runs/tune)"
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="a shared Optuna database (postgresql://..., mysql://...) where several machines "
        "run trials of one study (default: sqlite DIR/study.db)",
    )
    p.add_argument(
        "--study-name",
        default="scenes",
        metavar="NAME",
        help="the study's name in the storage (default: scenes)",
    )
    p.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="let every trial run all its epochs (default: median pruning after 3 trials)",
    )


# What the parser keeps besides run_tune's own options: the recipe flags, read by
# recipe_overrides.
RECIPE_DESTS = {key for flag, (key, _, _) in FLAGS.items() if flag not in NOT_RECIPE}
RECIPE_DESTS |= {"weights", "no_pretrained"}


def tune_options(args: argparse.Namespace, not_passed: set[str]) -> dict:
    """The parsed tune flags as ``run_tune``'s arguments: the recipe flags as config
    overrides every trial starts from, as ``scenes train`` reads them."""
    options = {k: v for k, v in vars(args).items() if k not in not_passed and k not in RECIPE_DESTS}
    return {**options, "overrides": recipe_overrides(args, skip=NOT_RECIPE)}


def add_compare_parser(sub, common) -> None:
    p = sub.add_parser(
        "compare",
        help="runs side by side: recipe differences, metrics, curves, per-class F1",
        description="One Markdown table of the runs (model, the recipe fields that differ, "
        "best epoch, validation metrics, training time, evaluate results), per-class F1 "
        "side by side, and with --out the training curves overlaid. Works on tune trials: "
        "scenes compare DIR/trials/*",
    )
    common(p)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two or more)")
    p.add_argument(
        "--out",
        metavar="FILE.md",
        help="write the Markdown there and the figures in FILE_figures/ beside it "
        "(default: Markdown to stdout, no figures)",
    )
    p.set_defaults(target=".evaluation.compare:run_compare")
