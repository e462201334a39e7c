"""A trained bundle ready for inference: the one preprocessing + forward path shared by
``evaluate``, ``predict``, the app and export checks, so they can never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.images import load_image
from .data.transforms import normalize_batch
from .models.bundle import BundleMeta, load_bundle, resolve_bundle_dir


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU. An explicit device that
    this machine does not have is refused with the way out, not left to fail mid-batch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    return resolved


@dataclass
class BundleModel:
    module: torch.nn.Module
    meta: BundleMeta
    device: torch.device
    directory: Path  # the model/ folder the network was loaded from

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> BundleModel:
        device = resolve_device(device)
        module, meta = load_bundle(path, device)
        return cls(module, meta, device, resolve_bundle_dir(path))

    @property
    def class_names(self) -> list[str]:
        return self.meta.class_names

    def load_image(self, source: str | Path | Image.Image) -> np.ndarray:
        """(H, W, 3) uint8, exactly as training decoded its images."""
        return load_image(source, self.meta.image_size, self.meta.interpolation)

    def to_input(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) array or (B, 3, H, W) tensor -> normalised float batch."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return normalize_batch(
            images.to(self.device), self.meta.mean, self.meta.std, self.meta.channels_last
        )

    @torch.inference_mode()
    def logits(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Logits (B, num_classes); with ``tta`` the mean of the image's and its mirror's."""
        x = self.to_input(images)
        out = self.module(x).float()
        if tta:
            out = (out + self.module(torch.flip(x, dims=[3])).float()) / 2
        return out.cpu()

    def probabilities(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> torch.Tensor:
        return torch.softmax(self.logits(images, tta), dim=1)

    def load_images(
        self, sources: Sequence[str | Path | Image.Image]
    ) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Decode many; returns (batch of the readable ones, their indices, errors by index)."""
        size = self.meta.image_size
        batch, ok, errors = [], [], {}
        for i, source in enumerate(sources):
            try:
                batch.append(self.load_image(source))
                ok.append(i)
            except Exception as exc:  # an unusable file is reported, never fatal
                errors[i] = f"{type(exc).__name__}: {exc}"
        array = np.stack(batch) if batch else np.empty((0, size, size, 3), np.uint8)
        return array, ok, errors
