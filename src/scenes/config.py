"""The one typed config of a training run: YAML recipe + CLI overrides, validated up front.

Everything a run needs is plain data here, so a run directory's ``config.yaml`` is enough to
say exactly what was trained. Validation happens before any data is read or model built:
unknown keys, wrong types and out-of-range values fail naming the field and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from .config_model import ModelConfig
from .config_sections import (
    AugmentConfig,
    DataConfig,
    Section,
    TrainConfig,
)
from .config_serve import ServeConfig
from .errors import ConfigError
from .overrides import describe_errors, parse_override, set_nested

DEFAULT_DATA_DIR = "data/intel"


def default_cache_dir() -> Path:
    """Where decoded images and other derived data are kept: $SCENES_CACHE, else ~/.cache/scenes."""
    return Path(os.environ.get("SCENES_CACHE") or Path.home() / ".cache" / "scenes")


class Config(Section):
    seed: int = Field(42, description="seeds shuffling, augmentation, dropout (not the split)")
    out: str | None = Field(None, description="run directory; null means runs/<model>-<time>")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()

    @property
    def task(self) -> str:
        """multilabel when the labels come from a CSV (data.labels), else multiclass."""
        return "multilabel" if self.data.labels else "multiclass"

    @model_validator(mode="after")
    def _fits_the_task(self) -> Config:
        wrong = {
            "multiclass": {"train.monitor": ("val_map",)},
            "multilabel": {
                "train.monitor": ("val_acc",),
                "data.sampler": ("balanced",),
                "train.class_weights": ("balanced", "effective"),
            },
        }[self.task]
        for key, values in wrong.items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if value in values:
                raise ValueError(f"{key}={value} does not apply to {self.task} data")
        if self.task == "multilabel" and self.train.teacher:
            raise ValueError("train.teacher: distillation is for one label per image (yet)")
        mixing = self.augment.mixup_alpha > 0 or self.augment.cutmix_alpha > 0
        if self.train.teacher and self.train.teacher_outputs == "cached" and mixing:
            raise ValueError(
                "train.teacher_outputs=cached keeps the teachers' answer for each un-augmented "
                "image, and a MixUp/CutMix image blends two: set augment.mixup_alpha and "
                "augment.cutmix_alpha to 0, or use train.teacher_outputs=live"
            )
        return self

    @model_validator(mode="after")
    def _init_fits(self) -> Config:
        if self.model.init is None:
            for key, value in (
                ("model.init_sha256", self.model.init_sha256),
                ("train.rehearsal", self.train.rehearsal),
            ):
                if value:
                    raise ValueError(f"{key} is for a run that starts from model.init: set it")
            return self
        if self.model.weights_file:
            raise ValueError("model.init and model.weights_file: one place to start from")
        if self.task == "multilabel":
            raise ValueError("model.init: a run starts from a single-label run (yet)")
        return self

    def resolved_data_dir(self) -> Path:
        return Path(self.data.dir or os.environ.get("SCENES_DATA") or DEFAULT_DATA_DIR)

    def uses_default_data_dir(self) -> bool:
        """True when no folder was named (data.dir, $SCENES_DATA): only then may a missing
        folder be filled by downloading the Intel dataset; a named one is a typo or a mistake."""
        return not (self.data.dir or os.environ.get("SCENES_DATA"))

    def resolved_cache_dir(self) -> Path:
        return Path(self.data.cache_dir) if self.data.cache_dir else default_cache_dir()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Config:
    """Resolve a config: defaults <- YAML file <- ``overrides`` (dotted keys) <- ``--set`` items."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"{path} must hold a mapping of sections, got {type(loaded).__name__}"
            )
        tree = loaded or {}
    for key, value in (overrides or {}).items():
        set_nested(tree, key.split("."), value)
    for item in sets or []:
        keys, value = parse_override(Config, item)
        set_nested(tree, keys, value)
    return load_config_tree(tree, path)


def load_config_tree(tree: dict[str, Any], source: str | Path | None = None) -> Config:
    """A nested mapping validated as a Config; errors name each field (and ``source``)."""
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        where = f" ({source})" if source else ""
        raise ConfigError(
            describe_errors(Config, exc).replace("invalid config", f"invalid config{where}", 1)
        ) from None
