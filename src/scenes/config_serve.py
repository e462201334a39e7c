"""The config's ``serve`` section: what is fitted after training for serving."""

from __future__ import annotations

from pydantic import Field

from .config_sections import Section


class ServeConfig(Section):
    """What is fitted after training, on the validation split, for serving."""

    calibrate: bool = Field(
        True,
        description="fit temperature scaling of the logits on the validation split, so the "
        "probabilities served mean what they say (multiclass)",
    )
    accept_rate: float | None = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="'none of these': fit a k-NN acceptance of photos on the training features "
        "and set its threshold to accept this share of the validation photos; null: accept "
        "every photo",
    )
    knn_k: int = Field(10, ge=1, le=1000, description="the k of the k-NN acceptance")
    reference_images: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="training images (a stratified sample) whose features the acceptance keeps",
    )
