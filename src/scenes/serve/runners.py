"""The networks behind a ``Predictor``: each takes a batch of decoded uint8 images (B, H, W, 3)
and returns logits (B, classes) and, when ``want_features`` is set, the penultimate features
(B, D), as NumPy arrays. Each normalises with the bundle's own mean and std, so every backend
sees the same input.

``onnx`` imports no torch: a machine serving the exported graph needs ONNX Runtime, NumPy and
Pillow only (``scenes predict --backend onnx`` starts in a fraction of the time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UsageError
from ..models.meta import BundleMeta


class Runner(Protocol):
    device: str  # where it runs, as the user would name it: cpu, cuda, cuda:1, mps
    want_features: bool

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


def normalize(images: np.ndarray, meta: BundleMeta) -> np.ndarray:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W), (x / 255 - mean) / std: the same float32
    operations, in the same order, as ``data.transforms.normalize_batch`` (bit for bit)."""
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)
    mean = np.asarray(meta.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std


class TorchRunner:
    """The bundle's PyTorch network, in eval mode on ``device``."""

    def __init__(self, directory: Path, meta: BundleMeta, device: str = "auto"):
        import torch

        from ..models.bundle import load_bundle
        from ..models.devices import resolve_device

        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self.module, _ = load_bundle(directory, self.torch_device)
        self.meta = meta
        self.want_features = False
        self._torch = torch

    def to_input(self, images: np.ndarray):
        """uint8 (B, H, W, 3) -> the normalised float tensor on the device."""
        from ..data.transforms import normalize_batch

        batch = self._torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return normalize_batch(
            batch.to(self.torch_device), self.meta.mean, self.meta.std, self.meta.channels_last
        )

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        from ..models.base import WithFeatures

        with self._torch.inference_mode():
            x = self.to_input(images)
            if not self.want_features:
                return self.module(x).float().cpu().numpy(), None
            logits, features = WithFeatures(self.module, self.meta.head)(x)
            return logits.float().cpu().numpy(), features.float().cpu().numpy()


class OnnxRunner:
    """The exported graph (``scenes export``) in ONNX Runtime; refused when it was not made
    from the bundle's current weights."""

    def __init__(self, onnx_path: Path, directory: Path, meta: BundleMeta, device: str = "auto"):
        import onnxruntime as ort

        from .export import StaleExportError, is_current

        if not is_current(onnx_path, directory):
            raise StaleExportError(
                f"{onnx_path} was not exported from {directory}'s current weights (the bundle "
                f"changed since, e.g. by a resumed run): run `scenes export --run {directory}` "
                "again"
            )
        available = ort.get_available_providers()
        gpu = "CUDAExecutionProvider" in available
        if device.startswith("cuda") and not gpu:
            raise UsageError(
                f"--device {device}: ONNX Runtime here has no CUDA provider; use --device cpu"
            )
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise UsageError(f"--device {device}: the onnx backend runs on cpu or cuda")
        providers = ["CPUExecutionProvider"]
        if gpu and device != "cpu":
            providers.insert(0, "CUDAExecutionProvider")
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self.session = ort.InferenceSession(str(onnx_path), providers=providers)
        self.meta = meta
        self.want_features = False

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = ["logits", "features"] if self.want_features else ["logits"]
        found = self.session.run(outputs, {"input": normalize(images, self.meta)})
        logits = np.asarray(found[0], dtype=np.float32)
        return logits, (np.asarray(found[1], dtype=np.float32) if self.want_features else None)
