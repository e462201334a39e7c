"""``Predictor`` and ``scenes predict``: top-k classes for images, on PyTorch or ONNX Runtime.

Preprocessing is ``BundleModel``'s (the bundle's model.json), identical to evaluation.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data.files import list_files
from .inference import BundleModel

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


class Predictor:
    """A trained bundle for prediction. ``backend="onnx"`` runs the exported ONNX graph."""

    def __init__(self, model: BundleModel, backend: str = "torch", onnx_path: Path | None = None):
        if backend not in ("torch", "onnx"):
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        self.model = model
        self.backend = backend
        self.session = None
        self._explainers: dict[tuple[str, str | None], Explainer] = {}
        if backend == "onnx":
            import onnxruntime as ort

            from .export import StaleExportError, is_current

            onnx_path = Path(onnx_path or model.directory / "model.onnx")
            if not is_current(onnx_path, model.directory):
                raise StaleExportError(
                    f"{onnx_path} was not exported from {model.directory}'s current weights "
                    f"(the bundle changed since, e.g. by a resumed run): run "
                    f"`scenes export --run {model.directory}` again"
                )
            providers = ["CPUExecutionProvider"]
            if model.device.type == "cuda":
                providers.insert(0, "CUDAExecutionProvider")
            self.session = ort.InferenceSession(str(onnx_path), providers=providers)

    @classmethod
    def load(cls, path: str | Path, backend: str = "torch", device: str = "auto") -> Predictor:
        """From a run directory or a ``model/`` bundle, on ``device`` (auto: CUDA when there is
        one). ONNX: uses ``<bundle>/model.onnx``, exporting it first when it is missing or was
        made from other weights than the bundle's current ones."""
        model = BundleModel.load(path, device)
        onnx_path = None
        if backend == "onnx":
            from .export import default_onnx_path, export_onnx, is_current

            onnx_path = default_onnx_path(path)
            if not onnx_path.is_file():
                log.warning("no %s yet: exporting it now", onnx_path)
                export_onnx(path, onnx_path)
            elif not is_current(onnx_path, path):
                log.warning("%s was made from older weights: exporting it again", onnx_path)
                export_onnx(path, onnx_path)
        return cls(model, backend, onnx_path)

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(B, num_classes) probabilities for a uint8 (B, H, W, 3) batch."""
        if self.session is None:
            return self.model.probabilities(images).numpy()
        x = self.model.to_input(images).contiguous().cpu().numpy()
        logits = self.session.run(["logits"], {"input": x})[0]
        return torch.softmax(torch.from_numpy(logits).float(), dim=1).numpy()

    def top(self, probs: np.ndarray, top_k: int) -> Prediction:
        """[(label, probability), ...] of the ``top_k`` largest of one row of probabilities."""
        order = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def predict(self, image: Source, top_k: int = 3) -> Prediction:
        """[(label, probability), ...] best first. Raises for an unreadable image."""
        batch = self.model.load_image(image)[None]
        return self.top(self.probabilities(batch)[0], top_k)

    def explainer(self, method: str = "gradcam", target_layer: str | None = None) -> Explainer:
        """The class-activation-map maker for ``method`` on ``target_layer`` (default: chosen
        for the architecture), built once. It runs the PyTorch network even when predictions
        come from ONNX Runtime: the maps need gradients."""
        from .cam import Explainer

        key = (method, target_layer)
        if key not in self._explainers:
            self._explainers[key] = Explainer(self.model, method, target_layer)
        return self._explainers[key]

    def class_index(self, class_name: str) -> int:
        if class_name not in self.class_names:
            raise ValueError(
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
        batch = self.model.load_image(image)[None]
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
        rows: list[PredictionRow] = []
        bar = tqdm(total=len(sources), unit="img", desc="predicting", disable=not progress)
        for start in range(0, len(sources), batch_size):
            chunk = sources[start : start + batch_size]
            images, ok, errors = self.model.load_images(chunk)
            probs = self.probabilities(images) if len(ok) else np.empty((0, 0))
            by_index = dict(zip(ok, probs, strict=True))
            for i, source in enumerate(chunk):
                name = str(source) if not isinstance(source, Image.Image) else "<image>"
                if i in by_index:
                    rows.append(PredictionRow(name, self.top(by_index[i], top_k)))
                else:
                    rows.append(PredictionRow(name, [], errors[i]))
            bar.update(len(chunk))
        bar.close()
        return rows


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given (even odd ones: they get an error row), folders searched recursively
    for image files (hidden ones left out, as everywhere: ``data.files.list_files``)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(list_files(path))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def write_csv(rows: list[PredictionRow], out: str | Path, top_k: int) -> None:
    header = ["path"]
    for k in range(1, top_k + 1):
        header += [f"label_{k}", f"prob_{k}"]
    header.append("error")
    with Path(out).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            cells: list[object] = [row.source]
            for k in range(top_k):
                cells += list(row.top[k]) if k < len(row.top) else ["", ""]
            writer.writerow([*cells, row.error or ""])


def format_table(rows: list[PredictionRow]) -> str:
    width = max([len(r.source) for r in rows] + [4])
    lines = [f"{'path':<{width}}  prediction"]
    for r in rows:
        text = r.error and f"ERROR {r.error}" or "  ".join(f"{lab} {p:.3f}" for lab, p in r.top)
        lines.append(f"{r.source:<{width}}  {text}")
    return "\n".join(lines)


def run_predict(
    run: str,
    paths: list[str],
    top_k: int = 3,
    out: str | None = None,
    backend: str = "torch",
    batch_size: int = 32,
    device: str = "auto",
) -> int:
    if top_k < 1:
        raise ValueError("--top-k must be at least 1")
    files = collect_images(paths)
    if not files:
        raise FileNotFoundError(f"no image files in {', '.join(paths)}")
    predictor = Predictor.load(run, backend=backend, device=device)
    top_k = min(top_k, len(predictor.class_names))
    rows = predictor.predict_many(
        files, top_k, batch_size, progress=sys.stderr.isatty() or len(files) > 100
    )
    failed = sum(r.error is not None for r in rows)
    if out:
        write_csv(rows, out, top_k)
        print(
            f"wrote {len(rows)} predictions to {out}"
            + (f" ({failed} unreadable)" if failed else "")
        )
    else:
        print(format_table(rows))
    return 0
