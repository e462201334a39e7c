"""The networks behind a ``Predictor``: each takes a batch of decoded uint8 images (B, H, W, 3)
and returns logits (B, classes) and, when ``want_features`` is set, the penultimate features
(B, D), as NumPy arrays. Each normalises with the bundle's own mean and std, so every backend
sees the same input.

The exported formats (``formats/``) run in their own runtimes: ``onnx`` and ``onnx-int8`` in
ONNX Runtime and ``openvino``/``openvino-int8`` in OpenVINO, importing no torch (a machine
serving them needs that runtime, NumPy and Pillow only); ``torchscript`` in PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UsageError
from ..models.meta import BundleMeta
from . import cpu_threads
from .pixels import normalize


class Runner(Protocol):
    device: str  # where it runs, as the user would name it: cpu, cuda, cuda:1, mps
    want_features: bool

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


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
        self._compiled = None  # torch.compile of _forward(), once compile() ran
        self._torch = torch

    def to_input(self, images: np.ndarray):
        """uint8 (B, H, W, 3) -> the normalised float tensor on the device."""
        from ..data.transforms import normalize_batch

        batch = self._torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return normalize_batch(
            batch.to(self.torch_device), self.meta.mean, self.meta.std, self.meta.channels_last
        )

    def compile(self) -> float:
        """``torch.compile`` what ``run`` calls and compile it now, on a blank photo; the
        seconds that took. ``module`` itself stays eager: explanations hook into its layers
        and take its gradients."""
        import time

        started = time.perf_counter()
        compiled = self._torch.compile(self._forward())
        size = self.meta.image_size
        with self._torch.inference_mode():
            compiled(self.to_input(np.zeros((1, size, size, 3), dtype=np.uint8)))
        # Only a network that has compiled answers: until now ``run`` used the eager one
        # (the app compiles in a thread beside its first requests).
        self._compiled = compiled
        return time.perf_counter() - started

    def _forward(self):
        from ..models.base import WithFeatures

        return WithFeatures(self.module, self.meta.head) if self.want_features else self.module

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with self._torch.inference_mode():
            x = self.to_input(images)
            network = self._compiled if self._compiled is not None else self._forward()
            answer = network(x)
            if not self.want_features:
                return answer.float().cpu().numpy(), None
            logits, features = answer
            return logits.float().cpu().numpy(), features.float().cpu().numpy()


class OnnxRunner:
    """An exported ONNX graph (fp32 or int8) in ONNX Runtime."""

    def __init__(self, onnx_path: Path, meta: BundleMeta, device: str = "auto"):
        import onnxruntime as ort

        available = ort.get_available_providers()
        gpu = "CUDAExecutionProvider" in available
        if device.startswith("cuda") and not gpu:
            raise UsageError(
                f"--device {device}: ONNX Runtime here has no CUDA provider; use --device cpu"
            )
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise UsageError(f"--device {device}: the onnx backends run on cpu or cuda")
        providers = ["CPUExecutionProvider"]
        if gpu and device != "cpu":
            providers.insert(0, "CUDAExecutionProvider")
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        options = ort.SessionOptions()
        if cpu_threads.share() is not None:  # one of several serving processes: its share
            options.intra_op_num_threads = cpu_threads.share()
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.meta = meta
        self.want_features = False

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = ["logits", "features"] if self.want_features else ["logits"]
        found = self.session.run(outputs, {"input": normalize(images, self.meta)})
        logits = np.asarray(found[0], dtype=np.float32)
        return logits, (np.asarray(found[1], dtype=np.float32) if self.want_features else None)


class TorchScriptRunner:
    """An exported TorchScript program (one scenes wrote here from ``bundle``'s current
    weights: ``formats/torchscript.py``), on the CPU or a CUDA GPU."""

    def __init__(self, path: Path, meta: BundleMeta, device: str, bundle: Path):
        import torch

        from ..models.devices import resolve_device
        from .formats import weights_digest
        from .formats.torchscript import load

        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self.program = load(path, self.torch_device, weights_digest(bundle))
        self.meta = meta
        self.want_features = False
        self._compiled = None  # torch.compile of _forward(), once compile() ran
        self._torch = torch

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = self._torch.from_numpy(normalize(images, self.meta)).to(self.torch_device)
        with self._torch.inference_mode():
            logits, features = self.program(x)
        features = features.float().cpu().numpy() if self.want_features else None
        return logits.float().cpu().numpy(), features


class OpenVinoRunner:
    """An exported OpenVINO IR (fp32 or int8), compiled for the CPU."""

    def __init__(self, path: Path, meta: BundleMeta, device: str = "auto"):
        from .formats.openvino_files import compile_model

        self.compiled = compile_model(path, device)
        self.device = "cpu"
        self.meta = meta
        self.want_features = False

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        found = self.compiled(normalize(images, self.meta))
        logits = np.asarray(found[self.compiled.output("logits")], dtype=np.float32)
        if not self.want_features:
            return logits, None
        return logits, np.asarray(found[self.compiled.output("features")], dtype=np.float32)


def export_runner(backend: str, path: Path, meta: BundleMeta, device: str, bundle: Path) -> Runner:
    """The runner of an exported file of format ``backend``, made from ``bundle``."""
    if backend.startswith("onnx"):
        return OnnxRunner(path, meta, device)
    if backend == "torchscript":
        return TorchScriptRunner(path, meta, device, bundle)
    return OpenVinoRunner(path, meta, device)
