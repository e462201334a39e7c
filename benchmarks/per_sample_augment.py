"""TRANSITIONAL: the former per-sample augmentation path (torchvision.transforms.v2, one image
at a time in the DataLoader), kept only so benchmarks/throughput.py --compare-per-sample can
measure the batched path (scenes.data.batch_augment, the only one scenes uses) against it.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


class RandomGamma(v2.Transform):
    """Gamma correction with gamma drawn uniformly from ``gamma_range`` (albumentations-style)."""

    def __init__(self, gamma_range: tuple[float, float] = (0.8, 1.2)) -> None:
        super().__init__()
        self.gamma_range = gamma_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        low, high = self.gamma_range
        return {"gamma": float(torch.empty(1).uniform_(low, high))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.adjust_gamma(inpt, params["gamma"])


class PixelDropout(v2.Transform):
    """Set a random ``fraction`` of pixels (all channels) to zero."""

    def __init__(self, fraction: float = 0.01) -> None:
        super().__init__()
        self.fraction = fraction

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        return {"keep": torch.rand(height, width) >= self.fraction}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.ndim < 2:
            return inpt
        return inpt * params["keep"].to(inpt.dtype)


def classic_steps(p: float) -> list[tuple[str, v2.Transform]]:
    """The original project's augmentations, each applied alone with probability ``p``."""
    return [
        ("horizontal flip", v2.RandomHorizontalFlip(p=p)),
        (
            "shift-scale-rotate",
            v2.RandomApply(
                [v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.85, 1.15))], p=p
            ),
        ),
        ("gamma", v2.RandomApply([RandomGamma((0.8, 1.2))], p=p)),
        ("rotate", v2.RandomApply([v2.RandomRotation(degrees=20)], p=p)),
        ("pixel dropout", v2.RandomApply([PixelDropout(0.01)], p=p)),
    ]


def train_transform(preset: str, p: float = 0.25) -> v2.Transform | None:
    """uint8 CHW -> augmented uint8 CHW, or None for no augmentation."""
    if preset == "none":
        return None
    if preset == "classic":
        return v2.Compose([t for _, t in classic_steps(p)])
    if preset == "trivialaugment":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.TrivialAugmentWide()])
    raise ValueError(f"unknown augmentation preset {preset!r}")
