"""The flags that build a training recipe, one table for every command that builds one
(``scenes train`` and ``scenes tune``): a train command line copied into tune means the same.

Each flag is a config field (``FLAGS``): its help and default come from the field in
``config.py``, the one place where defaults live, and the flags become config overrides
through the same table.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from ..config import Config
from .types import devices, positive, positive_float, positive_or_auto

# flag -> (config field, parser type, metavar)
FLAGS: dict[str, tuple[str, typing.Callable | None, str | None]] = {
    "--data": ("data.dir", str, "DIR"),
    "--model": ("model.name", str, "NAME"),
    "--epochs": ("train.epochs", positive, "N"),
    "--image-size": ("data.image_size", positive, "PX"),
    "--batch-size": ("data.batch_size", positive_or_auto, "N|auto"),
    "--lr": ("train.lr", positive_float, "LR"),
    "--mode": ("train.mode", None, None),
    "--out": ("out", str, "RUN_DIR"),
    "--accelerator": ("train.accelerator", None, None),
    "--devices": ("train.devices", devices, "N|IDS|auto"),
    "--num-nodes": ("train.num_nodes", positive, "N"),
    "--strategy": ("train.strategy", str, "NAME"),
}
# A --weights value that names a file (by its extension, or by existing) is model.weights_file;
# anything else is the name of a model's pretrained weights (model.weights).
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def field(key: str):
    section, _, name = key.rpartition(".")
    model = getattr(Config(), section) if section else Config()
    return type(model).model_fields[name]


def field_help(key: str, extra: str = "") -> str:
    """The field's description and default: ``maximum epochs (default: 4)``."""
    info = field(key)
    default = info.default
    shown = (
        "null"
        if default is None
        else str(default).lower()
        if isinstance(default, bool)
        else default
    )
    return f"{info.description} (config {key}; default: {shown}){extra}"


def choices_of(key: str) -> list[str] | None:
    literals = [a for a in typing.get_args(field(key).annotation) or [field(key).annotation]]
    values = [v for a in literals for v in typing.get_args(a) if isinstance(v, str)]
    if typing.get_origin(field(key).annotation) is typing.Literal:
        values = list(typing.get_args(field(key).annotation))
    return values or None


def add_recipe_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The recipe's flags (all of ``FLAGS`` but ``skip``) and the weights' two."""
    for flag, (key, kind, metavar) in FLAGS.items():
        if flag not in skip:
            options = {"choices": choices_of(key)} if kind is None else {"type": kind}
            p.add_argument(flag, dest=key, metavar=metavar, help=field_help(key), **options)
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights",
        metavar="NAME|FILE",
        help="the pretrained weights to start from: a name (DEFAULT: the best ImageNet weights "
        "this machine has; IMAGENET1K_V1; a timm tag) or a local state-dict file "
        f"({', '.join(WEIGHT_FILE_SUFFIXES)}); the config fields model.weights / "
        "model.weights_file (default: DEFAULT)",
    )
    weights.add_argument(
        "--no-pretrained",
        action="store_true",
        help="start from random weights (model.pretrained=false)",
    )


def add_set_option(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE``, repeatable: any config field, read as that field's type."""
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def is_weights_file(value: str) -> bool:
    return value.lower().endswith(WEIGHT_FILE_SUFFIXES) or Path(value).is_file()


def recipe_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    """The parsed recipe flags (all of ``FLAGS`` but ``skip``, as ``add_recipe_flags`` added
    them) as config overrides by field; flags not given: none."""
    keys = [key for flag, (key, _, _) in FLAGS.items() if flag not in skip]
    overrides = {key: getattr(args, key) for key in keys}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.weights is not None:
        key = "model.weights_file" if is_weights_file(args.weights) else "model.weights"
        overrides[key] = args.weights
    if args.no_pretrained:
        overrides["model.pretrained"] = False
    if not args.progress:
        overrides["train.progress_bar"] = False
    return overrides
