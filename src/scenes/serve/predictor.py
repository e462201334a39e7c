"""``Predictor``: a trained bundle ready for inference, the one preprocessing + forward path
shared by ``evaluate``, ``predict``, the app, ``export`` and ``explain``, so they can never
disagree.

Decoding is ``data.images.load_image``; the network is a runner (``runners.py``: PyTorch, or the
exported ONNX graph); probabilities come from one softmax (``answers.softmax``). With the ONNX
backend nothing here imports torch until a heatmap is asked for (the maps need gradients, so
they always come from the PyTorch network).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import BACKENDS, INFERENCE_BATCH
from ..console import stage
from ..data.images import load_image
from ..errors import UsageError
from ..models.bundle import BundleMeta, read_meta, resolve_bundle_dir
from .answers import Prediction, PredictionRow, Source, best_classes, softmax, source_name
from .runners import OnnxRunner, Runner, TorchRunner

if TYPE_CHECKING:
    import torch

    from .heatmaps import Explainer

log = logging.getLogger(__name__)

__all__ = ["Prediction", "PredictionRow", "Predictor", "Source"]


class Predictor:
    """A trained bundle ready for inference: its network (PyTorch, or the exported ONNX graph
    with ``backend="onnx"``), class names, and the one preprocessing path that evaluate,
    predict, the app, export and explain share, so they cannot disagree."""

    def __init__(
        self,
        meta: BundleMeta,
        directory: Path,
        runner: Runner,
        backend: str = "torch",
        device: str = "auto",
    ):
        self.meta = meta
        self.directory = directory  # the model/ folder it was loaded from
        self.runner = runner
        self.backend = backend
        self._device = device  # as asked: the PyTorch network for heatmaps goes there too
        self._torch_runner = runner if isinstance(runner, TorchRunner) else None
        self._explainers: dict[tuple[str, str | None], Explainer] = {}

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "torch",
        device: str = "auto",
        onnx_path: str | Path | None = None,
    ) -> Predictor:
        """From a run directory or a ``model/`` bundle, on ``device`` (auto: CUDA when there is
        one). ONNX: ``onnx_path``, by default ``<bundle>/model.onnx``, which is exported first
        when it is missing or was made from other weights than the bundle's current ones."""
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        directory = resolve_bundle_dir(path)
        meta = read_meta(directory)
        if backend == "torch":
            return cls(meta, directory, TorchRunner(directory, meta, str(device)), backend, device)
        if onnx_path is None:
            onnx_path = current_onnx(directory)
        runner = OnnxRunner(Path(onnx_path), directory, meta, str(device))
        return cls(meta, directory, runner, backend, device)

    @property
    def class_names(self) -> list[str]:
        return self.meta.class_names

    @property
    def device(self) -> str:
        return self.runner.device

    # -- the PyTorch network: served by the torch backend, and behind heatmaps for every one ---
    @property
    def torch_runner(self) -> TorchRunner:
        if self._torch_runner is None:
            self._torch_runner = TorchRunner(self.directory, self.meta, str(self._device))
        return self._torch_runner

    @property
    def module(self) -> torch.nn.Module:
        """The PyTorch network, in eval mode (loaded on first use with other backends)."""
        return self.torch_runner.module

    def to_input(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> the normalised tensor the PyTorch network takes."""
        return self.torch_runner.to_input(images)

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

    # -- answers ------------------------------------------------------------------------------
    def logits(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """Logits (B, num_classes) of a uint8 (B, H, W, 3) batch, from this predictor's backend;
        with ``tta`` the mean of the image's and its mirror's."""
        out = self.runner.logits(images)
        if tta:
            out = (out + self.runner.logits(np.ascontiguousarray(images[:, :, ::-1]))) / 2
        return out

    def probabilities(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """(B, num_classes) probabilities for a uint8 (B, H, W, 3) batch."""
        return softmax(self.logits(images, tta))

    def top(self, probs: np.ndarray, k: int) -> Prediction:
        """[(label, probability), ...] of the ``k`` largest of one row of probabilities."""
        return best_classes(probs, self.class_names, k)

    def predict(self, image: Source, top_k: int = 3, tta: bool = False) -> Prediction:
        """[(label, probability), ...] best first. Raises for an unreadable image."""
        batch = self.load_image(image)[None]
        return self.top(self.probabilities(batch, tta)[0], top_k)

    def explainer(self, method: str = "gradcam", target_layer: str | None = None) -> Explainer:
        """The class-activation-map maker for ``method`` on ``target_layer`` (default: chosen
        for the architecture), built once. It runs the PyTorch network even when predictions
        come from ONNX Runtime: the maps need gradients."""
        from .heatmaps import Explainer

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
        tta: bool = False,
    ) -> tuple[list[Prediction], list[int], np.ndarray]:
        """For a uint8 (B, H, W, 3) batch: the top-k of each image (from this predictor's
        backend, as ``predict`` gives them), the class index each heatmap is for
        (``class_name``, default each image's top class) and the (B, H, W) heatmaps."""
        probs = self.probabilities(images, tta)
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
        batch_size: int = INFERENCE_BATCH,
        progress: bool = False,
        tta: bool = False,
    ) -> list[PredictionRow]:
        """One row per source, in order; an unreadable file is a row with ``error`` set."""
        return list(self.iter_predictions(sources, top_k, batch_size, progress, tta))

    def iter_predictions(
        self,
        sources: Sequence[Source],
        top_k: int = 3,
        batch_size: int = INFERENCE_BATCH,
        progress: bool = False,
        tta: bool = False,
    ) -> Iterator[PredictionRow]:
        """``predict_many``'s rows, yielded batch by batch as they are computed."""
        with stage("predicting", len(sources), show=progress) as bar:
            for start in range(0, len(sources), batch_size):
                chunk = sources[start : start + batch_size]
                images, ok, errors = self.load_images(chunk)
                probs = self.probabilities(images, tta) if len(ok) else np.empty((0, 0))
                by_index = dict(zip(ok, probs, strict=True))
                for i, source in enumerate(chunk):
                    name = source_name(source)
                    if i in by_index:
                        yield PredictionRow(name, self.top(by_index[i], top_k))
                    else:
                        yield PredictionRow(name, [], errors[i])
                bar.update(len(chunk))


def current_onnx(directory: Path) -> Path:
    """``<bundle>/model.onnx``, exported first when it is missing or was made from other weights
    than the bundle's current ones (the only case where the ONNX backend needs torch)."""
    from .export import default_onnx_path, is_current

    onnx_path = default_onnx_path(directory)
    if not onnx_path.is_file():
        log.warning("no %s yet: exporting it now", onnx_path)
    elif not is_current(onnx_path, directory):
        log.warning("%s was made from older weights: exporting it again", onnx_path)
    else:
        return onnx_path
    from .export import export_onnx

    return export_onnx(directory, onnx_path)
