"""``scenes train``'s options: the recipe's flags (``recipe_args.py``, shared with ``scenes
tune``) and those of a run alone (resume, the learning-rate finder)."""

from __future__ import annotations

import argparse

from .recipe_args import add_recipe_flags, add_set_option, recipe_overrides


def add_train_parser(sub, common) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune an ImageNet-pretrained model",
        description="Fine-tune a classifier into a run directory. Defaults are config.py's "
        "(configs/default.yaml holds the same); --config loads a recipe, flags override it, "
        "--set overrides any field.",
    )
    common(p)
    p.add_argument(
        "--config", metavar="FILE", help="a YAML recipe, e.g. configs/resnet50.yaml (default: none)"
    )
    add_recipe_flags(p)
    p.add_argument(
        "--resume",
        metavar="RUN|CKPT",
        help="continue a run (its folder, which means RUN/checkpoints/last.ckpt, or a "
        "checkpoint) in its own folder with its config.yaml; a change to what the run computes "
        "or to its images is refused (default: a new run)",
    )
    p.add_argument(
        "--init",
        dest="model.init",
        metavar="RUN",
        help="start a new run from RUN's trained weights instead of pretrained ones, on the "
        "data given (new classes get new head rows; train.rehearsal=N keeps N of RUN's "
        "images per old class the data lacks); the same architecture; not a resume (config "
        "model.init; default: null)",
    )
    p.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training: Lightning's learning-rate range test on the recipe (100 "
        "steps, lr from 1e-7 to 1), plotted in RUN/figures/lr_find.png, the suggestion "
        "printed and not applied (default: train)",
    )
    add_set_option(
        p,
        "any config field, read as that field's type, e.g. --set train.scheduler=step or "
        "--set train.devices=0,2 (repeatable; default: none)",
    )
    p.set_defaults(target=".training.command:run_train")


def train_options(args: argparse.Namespace) -> dict:
    """The parsed train flags as ``run_train``'s arguments: config overrides by field."""
    overrides = recipe_overrides(args)
    if getattr(args, "model.init") is not None:
        overrides["model.init"] = getattr(args, "model.init")
    return {
        "config_path": args.config,
        "overrides": overrides,
        "sets": args.sets,
        "resume": args.resume,
        "find_lr": args.find_lr,
    }
