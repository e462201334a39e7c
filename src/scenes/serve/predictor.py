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
from ..errors import UsageError
from ..models.bundle import load_reference, read_meta, resolve_bundle_dir
from ..models.meta import BundleMeta
from .answers import Answers, Prediction, PredictionRow, Source, source_name
from .decoding import decoded_batches
from .runners import Runner, TorchRunner, export_runner

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
        accept_all: bool = False,
    ):
        self.meta = meta
        self.directory = directory  # the model/ folder it was loaded from
        self.runner = runner
        self.backend = backend
        self._device = device  # as asked: the PyTorch network for heatmaps goes there too
        self._torch_runner = runner if isinstance(runner, TorchRunner) else None
        self._explainers: dict[tuple[str, str | None], Explainer] = {}
        # The acceptance of unknown photos: off when the bundle has none or it is switched off.
        self.reference = None
        if meta.acceptance is not None and not accept_all:
            self.reference = load_reference(directory)
        runner.want_features = self.reference is not None

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "torch",
        device: str = "auto",
        export_path: str | Path | None = None,
        accept_all: bool = False,
        compile: bool = False,
    ) -> Predictor:
        """From a run directory or a ``model/`` bundle, on ``device`` (auto: CUDA when there is
        one). ``backend``: torch, or an exported format (``formats.FORMATS``: onnx, onnx-int8,
        torchscript, openvino, openvino-int8), read from ``export_path``, by default its file
        in the bundle folder, which is exported first when it is missing or was made from other
        weights than the bundle's current ones (a stale ``export_path`` is refused).
        ``accept_all``: every photo counts as one of the known classes (no acceptance).
        ``compile``: ``torch.compile`` the network first (torch backend; see ``compile_now``)."""
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if compile and backend != "torch":
            raise UsageError(
                f"--compile applies to the torch backend; {backend} is already a compiled "
                "format (drop --compile or use --backend torch)"
            )
        directory = resolve_bundle_dir(path)
        meta = read_meta(directory)
        if backend == "torch":
            runner: Runner = TorchRunner(directory, meta, str(device))
        else:
            from .formats import get_format, require
            from .served_exports import check_current, current_export

            require(get_format(backend))
            if export_path is None:
                found = current_export(directory, backend)
            else:
                found = Path(export_path)
                check_current(found, directory, backend)
            runner = export_runner(backend, found, meta, str(device), directory)
        predictor = cls(meta, directory, runner, backend, device, accept_all)
        if compile:
            predictor.compile_now()
        return predictor

    def compile_now(self, required: bool = True) -> bool:
        """``torch.compile`` the network and compile it at once, so no request waits for it
        (measured on 2 CPU cores: single photos 26-29% faster once compiled, after 15 s).
        Not ``required``: a failure (no C++ compiler, an unsupported model) is a warning and
        the network stays as it was; True when it compiled."""
        import logging

        try:
            seconds = self.torch_runner.compile()
        except Exception as exc:
            if required:
                raise UsageError(
                    f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); run "
                    "without --compile"
                ) from exc
            logging.getLogger(__name__).warning(
                "torch.compile failed (%s): serving without it", type(exc).__name__
            )
            return False
        logging.getLogger(__name__).info("torch.compile: %.0f s", seconds)
        return True

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
        return self.meta.preprocess.load(source)

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
    def forward(
        self, images: np.ndarray, tta: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (B, classes) of a uint8 (B, H, W, 3) batch from this predictor's backend, and
        the features when the acceptance needs them; with ``tta`` the logits are the mean of the
        image's and its mirror's. The features stay the plain image's: the acceptance threshold
        was fitted on single views, and the mean of two views' features is another quantity
        (on real photos it lay nearer the training images: 58% accepted at a 50% threshold)."""
        logits, features = self.runner.run(images)
        if tta:
            mirrored, _ = self.runner.run(np.ascontiguousarray(images[:, :, ::-1]))
            logits = (logits + mirrored) / 2
        return logits, features

    def logits(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """The raw logits (before the temperature) of a uint8 (B, H, W, 3) batch."""
        return self.forward(images, tta)[0]

    def answers(self, images: np.ndarray, tta: bool = False) -> Answers:
        """Probabilities, and acceptance when the bundle has it: what every path reports."""
        logits, features = self.forward(images, tta)
        return Answers.of(self.meta, logits, features, self.reference)

    def probabilities(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """(B, num_classes) probabilities for a uint8 (B, H, W, 3) batch."""
        return self.answers(images, tta).probs

    def predict(self, image: Source, top_k: int = 3, tta: bool = False) -> Prediction:
        """[(label, probability), ...] best first, with ``.accepted``, ``.score`` and
        (multi-label) ``.labels``. Raises for an unreadable image."""
        return self.answers(self.load_image(image)[None], tta).prediction(0, top_k)

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
        found = self.answers(images, tta)
        if class_name is None:
            classes = [int(np.argmax(p)) for p in found.probs]
        else:
            classes = [self.class_index(class_name)] * len(images)
        maps = self.explainer(method, target_layer).heatmaps(images, classes)
        return [found.prediction(i, top_k) for i in range(len(images))], classes, maps

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
            for chunk, images, ok, errors in decoded_batches(self.load_images, sources, batch_size):
                found = self.answers(images, tta) if ok else None
                row_of = {i: row for row, i in enumerate(ok)}
                for i, source in enumerate(chunk):
                    name = source_name(source)
                    if i in row_of:
                        yield PredictionRow(name, found.prediction(row_of[i], top_k))
                    else:
                        yield PredictionRow(name, Prediction(), errors[i])
                bar.update(len(chunk))
