"""What ``model.json`` holds: ``BundleMeta``, the network's description (architecture, class
names in index order, input size and preprocessing), the task, and what was fitted after
training (temperature, thresholds, the acceptance of unknown photos), with the values a trained
scenes model can have. It is validated field by field before anything is built from it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config_sections import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ..data.images import RESAMPLING, Preprocess

if TYPE_CHECKING:
    from .base import BuiltModel

# 1: the network and its preprocessing; 2: resize modes, the task (multiclass or multilabel),
# calibration (temperature, per-class thresholds), acceptance of unknown photos, the training
# options that shaped it. A format-1 bundle loads as format 2 with the defaults. 3: ensembles
# (backend "ensemble" with its members); only they are written as 3, so a scenes that knows
# format 2 still reads every other bundle, and says "upgrade" for an ensemble.
BUNDLE_FORMAT = 3
SINGLE_MODEL_FORMAT = 2

Interpolation = Literal[tuple(RESAMPLING)]  # type: ignore[valid-type]


class Acceptance(BaseModel):
    """ "None of these": a photo is accepted when its k-NN distance (in the normalised
    penultimate features, to the reference features in ``ACCEPTANCE_FILE``) is at most
    ``threshold``, which accepted ``accept_rate`` of the validation photos."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["knn"] = "knn"
    k: int = Field(ge=1, le=1000)
    threshold: float = Field(ge=0.0, le=2.0)  # distances of unit vectors are in [0, 2]
    accept_rate: float = Field(gt=0.0, le=1.0)


class BundleMeta(BaseModel):
    """What ``model.json`` holds, with the values a trained scenes model can have."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["torchvision", "timm", "hf", "ensemble"]
    architecture: str = Field(min_length=1, max_length=500)
    class_names: list[str] = Field(min_length=2, max_length=100_000)
    image_size: int = Field(ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    interpolation: Interpolation = "bilinear"
    resize: Literal["squash", "crop", "pad"] = "squash"  # how a photo becomes the square
    head: str = Field("", max_length=500)
    channels_last: bool = True
    format: int = Field(SINGLE_MODEL_FORMAT, ge=1, le=BUNDLE_FORMAT)
    # What the backend needs to rebuild the network offline (the HF model config).
    backend_config: dict | None = None
    task: Literal["multiclass", "multilabel"] = "multiclass"
    # Logits are divided by it before the softmax (temperature scaling, fitted on validation).
    temperature: float = Field(1.0, gt=0.0, le=100.0)
    # multilabel: a class is predicted when its probability is at least its threshold.
    thresholds: list[float] | None = None
    acceptance: Acceptance | None = None
    # The training options that shaped the model, for the report and the reader.
    training: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    # backend "ensemble": the members' own descriptions (their weights are "members.<i>.*").
    members: list[BundleMeta] | None = Field(None, min_length=2, max_length=16)

    @field_validator("class_names")
    @classmethod
    def _names_distinct(cls, names: list[str]) -> list[str]:
        if any(not n.strip() for n in names):
            raise ValueError("class names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("class names must be distinct")
        return names

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) and abs(v) < 1e4 for v in values):
            raise ValueError("values must be finite numbers")
        return values

    @field_validator("std")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values):
            raise ValueError("standard deviations must be greater than 0")
        return values

    @model_validator(mode="after")
    def _thresholds_fit(self) -> BundleMeta:
        if self.thresholds is not None:
            if self.task != "multilabel":
                raise ValueError("thresholds are for task multilabel")
            if len(self.thresholds) != len(self.class_names):
                raise ValueError("thresholds must give one threshold per class")
            if not all(0.0 <= v <= 1.0 for v in self.thresholds):
                raise ValueError("thresholds must be probabilities, in [0, 1]")
        return self

    @model_validator(mode="after")
    def _rebuildable_offline(self) -> BundleMeta:
        # Without its config an hf bundle could only be rebuilt from the Hub: a download
        # of whatever the architecture names, not the model that was trained.
        if self.backend == "hf" and not self.backend_config:
            raise ValueError("an hf bundle needs backend_config (the model's config)")
        return self

    @model_validator(mode="after")
    def _members_fit(self) -> BundleMeta:
        if (self.backend == "ensemble") != (self.members is not None):
            raise ValueError("members are given exactly when the backend is ensemble")
        if self.members is not None and self.format < BUNDLE_FORMAT:
            raise ValueError(f"an ensemble is bundle format {BUNDLE_FORMAT}")
        for i, member in enumerate(self.members or []):
            if member.backend == "ensemble":
                raise ValueError(f"member {i} is itself an ensemble: list its members instead")
            if member.class_names != self.class_names:
                raise ValueError(f"member {i} has other classes (or another order)")
            if member.task != "multiclass" or member.image_size > self.image_size:
                raise ValueError(f"member {i}: multiclass members of at most image_size px")
        return self

    @classmethod
    def of(
        cls,
        built: BuiltModel,
        class_names: list[str],
        image_size: int,
        channels_last: bool = True,
        resize: str = "squash",
    ) -> BundleMeta:
        """The description of ``built`` trained on ``class_names`` at ``image_size``."""
        return cls(
            backend=built.backend,
            architecture=built.architecture,
            class_names=list(class_names),
            image_size=image_size,
            mean=list(built.mean),
            std=list(built.std),
            interpolation=built.interpolation,
            head=built.head,
            channels_last=channels_last,
            backend_config=built.backend_config,
            resize=resize,
        )

    @property
    def preprocess(self) -> Preprocess:
        """How a file becomes this model's input pixels, exactly as training decoded them."""
        return Preprocess.for_mean(self.image_size, self.interpolation, self.resize, self.mean)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def model_name(self) -> str:
        return f"{self.backend}:{self.architecture}"
