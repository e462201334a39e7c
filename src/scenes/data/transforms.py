"""Normalisation: uint8 or unit-float image batches -> the model's normalised input.

It happens once per batch on the device, with the mean/std recorded in the model bundle, so
training, evaluation and serving use exactly the same numbers. (Training batches are augmented
before it, in ``batch_augment``.)
"""

from __future__ import annotations

import torch


def normalize_batch(
    images: torch.Tensor, mean: list[float], std: list[float], channels_last: bool = False
) -> torch.Tensor:
    """uint8 (B, 3, H, W), or float in [0, 1] (augmented training batches) -> normalised
    float32 (B, 3, H, W)."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    x = (x - mean_t) / std_t
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
