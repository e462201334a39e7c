"""The search space of ``scenes tune``: a small YAML over config fields, checked against the
config before the first trial, and turned into Optuna suggestions.

    train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a range: float or int by the field
    train.head_epochs: {low: 0, high: 2}
    augment.preset: [classic, trivial]                  # a list: one of these values
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, load_config_tree
from ..errors import ConfigError
from ..overrides import set_nested

# What `scenes tune` searches unless --space names a file (configs/tune_space.yaml is this).
DEFAULT_SPACE = """\
# Each key is a config field (as in `scenes train --set`): a range {low, high, log, step} for a
# number field (an int field gets whole numbers), or a list of values to choose from. Fields
# not named keep the values of --config and --set.
train.lr: {low: 3.0e-4, high: 1.0e-2, log: true}
train.unfreeze_lr_factor: {low: 0.03, high: 0.3, log: true}
train.label_smoothing: {low: 0.0, high: 0.2}
train.weight_decay: {low: 1.0e-5, high: 1.0e-2, log: true}
augment.preset: [classic, trivialaugment]
augment.p: {low: 0.0, high: 0.5}
"""

# Fields a trial does not choose: tune names each trial's folder and monitors its objective.
TUNE_OWNS = {"out": "each trial's folder is DIR/trials/NNN", "train.monitor": "use --objective"}
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    field: str  # a dotted config field, e.g. train.lr
    choices: tuple | None = None  # a categorical dimension
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.field, list(self.choices))
        if self.integer:
            return trial.suggest_int(
                self.field, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.field, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.field} in {list(self.choices)}"
        scale = ", log" if self.log else ""
        return f"{self.field} in [{self.low:g}, {self.high:g}{scale}]"


def load_space(path: str | Path | None, base: Config) -> list[Dimension]:
    """The dimensions of the YAML at ``path`` (None: ``DEFAULT_SPACE``), each checked against
    ``base``: an unknown field, an empty or impossible range, or a value the field refuses is
    an error naming it."""
    source = Path(path) if path is not None else "the default search space"
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"search space not found: {path}")
    text = Path(path).read_text() if path is not None else DEFAULT_SPACE
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(tree, dict) or not tree:
        raise ConfigError(
            f"{source}: a search space is a mapping of config fields to a range or a list, e.g. "
            "`train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}`"
        )
    return [dimension(str(field), spec, base, source) for field, spec in tree.items()]


def dimension(field: str, spec: Any, base: Config, source: Path | str) -> Dimension:
    where = f"{source}: {field}"
    if field in TUNE_OWNS:
        raise ConfigError(f"{where}: set by scenes tune itself ({TUNE_OWNS[field]})")
    annotation = field_annotation(field)
    if annotation is None:
        raise ConfigError(
            f"{where}: not a config field; the fields are those of `scenes train --set` "
            "(configs/default.yaml lists them all)"
        )
    if isinstance(spec, list):
        if len(spec) < 2 or len(set(map(repr, spec))) < len(spec):
            raise ConfigError(f"{where}: a list of choices needs two or more different values")
        for value in spec:
            check_value(field, value, base, where)
        return Dimension(field, choices=tuple(spec))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - RANGE_KEYS:
        raise ConfigError(
            f"{where}: give a list of values or a range {{low: .., high: .., log: false, "
            f"step: null}}, got {spec!r}"
        )
    integer = annotation is int or int in typing.get_args(annotation)
    numeric = integer or annotation is float or float in typing.get_args(annotation)
    if not numeric:
        raise ConfigError(f"{where}: not a number field: give a list of values instead of a range")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log")), spec.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
        if integer and value is not None and not float(value).is_integer():
            raise ConfigError(f"{where}: an integer field: {name} must be whole, got {value!r}")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if log and step is not None:
        raise ConfigError(f"{where}: log and step cannot be combined (Optuna samples one)")
    if step is not None and (step <= 0 or step > high - low):
        raise ConfigError(f"{where}: step must be in (0, high - low], got {step}")
    for value in (low, high):
        check_value(field, int(value) if integer else float(value), base, where)
    return Dimension(field, low=low, high=high, log=log, step=step, integer=integer)


def field_annotation(field: str) -> Any | None:
    """The field's type, or None when ``field`` is not a leaf of the config (or a section)."""
    model: Any = Config
    parts = field.split(".")
    for part in parts[:-1]:
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            return None
        model = info.annotation
    info = getattr(model, "model_fields", {}).get(parts[-1])
    if info is None or hasattr(info.annotation, "model_fields"):
        return None
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # e.g. float | None
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return annotation


def check_value(field: str, value: Any, base: Config, where: str) -> None:
    """Refuse a value the config refuses (a negative learning rate, an unknown preset)."""
    try:
        apply(base, {field: value})
    except ConfigError as exc:
        detail = str(exc).split("\n", 1)[-1].strip()
        raise ConfigError(f"{where}: {value!r} is not a valid value: {detail}") from None


def apply(base: Config, params: dict[str, Any], **overrides: Any) -> Config:
    """``base`` with the trial's ``params`` (dotted fields) and ``overrides`` set, validated."""
    tree = base.model_dump(mode="json")
    for field, value in {**params, **overrides}.items():
        set_nested(tree, field.split("."), value)
    return load_config_tree(tree, "the search space")
