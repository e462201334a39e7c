"""``Predictor``: a trained bundle ready for inference, the one preprocessing + forward path
shared by ``evaluate``, ``predict``, the app, ``export`` and ``explain``, so they can never
disagree."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data.images import load_image
from .data.transforms import normalize_batch
from .errors import UsageError
from .models.bundle import BundleMeta, load_bundle, resolve_bundle_dir

if TYPE_CHECKING:
    from .cam import Explainer

log = logging.getLogger(__name__)

Source = str | Path | Image.Image
Prediction = list[tuple[str, float]]


@dataclass
class PredictionRow:
    source: str
    top: Prediction  # empty when the file could not be read
    error: str | None = None


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
        raise UsageError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise UsageError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available here; use --device cpu")
    return resolved


class Predictor:
    """A trained bundle ready for inference: its network (PyTorch, or the exported ONNX graph
    with ``backend="onnx"``), class names, and the one preprocessing path that evaluate,
    predict, the app, export and explain share, so they cannot disagree."""

    def __init__(
        self,
        module: torch.nn.Module,
        meta: BundleMeta,
        directory: Path,
        device: torch.device,
        backend: str = "torch",
        onnx_path: Path | None = None,
    ):
        if backend not in ("torch", "onnx"):
            raise UsageError(f"unknown backend {backend!r}; choose torch or onnx")
        self.module = module  # the PyTorch network, in eval mode (also for ONNX: explain)
        self.meta = meta
        self.directory = directory  # the model/ folder it was loaded from
        self.device = device
        self.backend = backend
        self.session = None
        self._explainers: dict[tuple[str, str | None], Explainer] = {}
        if backend == "onnx":
            self.session = self._onnx_session(Path(onnx_path or directory / "model.onnx"))

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "torch",
        device: str | torch.device = "auto",
        onnx_path: str | Path | None = None,
    ) -> Predictor:
        """From a run directory or a ``model/`` bundle, on ``device`` (auto: CUDA when there is
        one). ONNX: ``onnx_path``, by default ``<bundle>/model.onnx``, which is exported first
        when it is missing or was made from other weights than the bundle's current ones."""
        device = resolve_device(device)
        module, meta = load_bundle(path, device)
        directory = resolve_bundle_dir(path)
        if backend == "onnx" and onnx_path is None:
            from .export import default_onnx_path, export_onnx, is_current

            onnx_path = default_onnx_path(directory)
            if not onnx_path.is_file():
                log.warning("no %s yet: exporting it now", onnx_path)
                export_onnx(directory, onnx_path)
            elif not is_current(onnx_path, directory):
                log.warning("%s was made from older weights: exporting it again", onnx_path)
                export_onnx(directory, onnx_path)
        return cls(module, meta, directory, device, backend, onnx_path)

    def _onnx_session(self, onnx_path: Path):
        import onnxruntime as ort

        from .export import StaleExportError, is_current

        if not is_current(onnx_path, self.directory):
            raise StaleExportError(
                f"{onnx_path} was not exported from {self.directory}'s current weights "
                f"(the bundle changed since, e.g. by a resumed run): run "
                f"`scenes export --run {self.directory}` again"
            )
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        return ort.InferenceSession(str(onnx_path), providers=providers)

    @property
    def class_names(self) -> list[str]:
        return self.meta.class_names

    # -- the one preprocessing path ---------------------------------------------------------
    def load_image(self, source: Source) -> np.ndarray:
        """(H, W, 3) uint8, exactly as training decoded its images."""
        return load_image(source, self.meta.image_size, self.meta.interpolation)

    def load_images(
        self, sources: Sequence[Source]
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

    def to_input(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) array or (B, 3, H, W) tensor -> normalised float batch."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        return normalize_batch(
            images.to(self.device), self.meta.mean, self.meta.std, self.meta.channels_last
        )

    # -- answers ------------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Logits (B, num_classes) on the CPU, from this predictor's backend; with ``tta`` the
        mean of the image's and its mirror's."""
        x = self.to_input(images)
        out = self._forward(x)
        if tta:
            out = (out + self._forward(torch.flip(x, dims=[3]))) / 2
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            return self.module(x).float().cpu()
        (logits,) = self.session.run(["logits"], {"input": x.contiguous().cpu().numpy()})
        return torch.from_numpy(logits).float()

    def probabilities(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> np.ndarray:
        """(B, num_classes) probabilities for a uint8 (B, H, W, 3) batch."""
        return torch.softmax(self.logits(images, tta), dim=1).numpy()

    def top(self, probs: np.ndarray, top_k: int) -> Prediction:
        """[(label, probability), ...] of the ``top_k`` largest of one row of probabilities."""
        order = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def predict(self, image: Source, top_k: int = 3) -> Prediction:
        """[(label, probability), ...] best first. Raises for an unreadable image."""
        batch = self.load_image(image)[None]
        return self.top(self.probabilities(batch)[0], top_k)

    def explainer(self, method: str = "gradcam", target_layer: str | None = None) -> Explainer:
        """The class-activation-map maker for ``method`` on ``target_layer`` (default: chosen
        for the architecture), built once. It runs the PyTorch network even when predictions
        come from ONNX Runtime: the maps need gradients."""
        from .cam import Explainer

        key = (method, target_layer)
        if key not in self._explainers:
            self._explainers[key] = Explainer(self, method, target_layer)
        return self._explainers[key]

    def class_index(self, class_name: str) -> int:
        if class_name not in self.class_names:
            raise UsageError(
                f"unknown class {class_name!r}; the model's classes are "
                f"{', '.join(self.class_names)}"
            )
        return self.class_names.index(class_name)

    def explain_pixels(
        self,
        images: np.ndarray,
        class_name: str | None = None,
        top_k: int = 3,
        method: str = "gradcam",
        target_layer: str | None = None,
    ) -> tuple[list[Prediction], list[int], np.ndarray]:
        """For a uint8 (B, H, W, 3) batch: the top-k of each image (from this predictor's
        backend, as ``predict`` gives them), the class index each heatmap is for
        (``class_name``, default each image's top class) and the (B, H, W) heatmaps."""
        probs = self.probabilities(images)
        if class_name is None:
            classes = [int(np.argmax(p)) for p in probs]
        else:
            classes = [self.class_index(class_name)] * len(images)
        maps = self.explainer(method, target_layer).heatmaps(images, classes)
        return [self.top(p, top_k) for p in probs], classes, maps

    def explain(
        self,
        image: Source,
        class_name: str | None = None,
        top_k: int = 3,
        method: str = "gradcam",
        target_layer: str | None = None,
    ) -> tuple[Prediction, np.ndarray]:
        """(top-k as ``predict`` gives it, heatmap): an (H, W) float32 array in [0, 1] at the
        model's input size, of ``class_name`` (default: the top class). Raises for an
        unreadable image."""
        batch = self.load_image(image)[None]
        tops, _, maps = self.explain_pixels(batch, class_name, top_k, method, target_layer)
        return tops[0], maps[0]

    def predict_many(
        self,
        sources: Sequence[Source],
        top_k: int = 3,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[PredictionRow]:
        """One row per source, in order; an unreadable file is a row with ``error`` set."""
        return list(self.iter_predictions(sources, top_k, batch_size, progress))

    def iter_predictions(
        self,
        sources: Sequence[Source],
        top_k: int = 3,
        batch_size: int = 32,
        progress: bool = False,
    ) -> Iterator[PredictionRow]:
        """``predict_many``'s rows, yielded batch by batch as they are computed."""
        with tqdm(total=len(sources), unit="img", desc="predicting", disable=not progress) as bar:
            for start in range(0, len(sources), batch_size):
                chunk = sources[start : start + batch_size]
                images, ok, errors = self.load_images(chunk)
                probs = self.probabilities(images) if len(ok) else np.empty((0, 0))
                by_index = dict(zip(ok, probs, strict=True))
                for i, source in enumerate(chunk):
                    name = str(source) if not isinstance(source, Image.Image) else "<image>"
                    if i in by_index:
                        yield PredictionRow(name, self.top(by_index[i], top_k))
                    else:
                        yield PredictionRow(name, [], errors[i])
                bar.update(len(chunk))
