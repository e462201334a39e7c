"""Class-activation maps of a bundle with the ``grad-cam`` package (pytorch-grad-cam).

The layer is the one ``models.cam_target`` picks for the architecture (or the one asked for);
images are normalised by the bundle's own ``Predictor.to_input``, the one inference path.
Maps are computed on a private copy of the network, frozen and in eval mode: hooks, gradients
and BatchNorm state never touch the module that serves predictions, and a lock keeps two
threads (the app) from mixing up each other's activations.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..choices import CAM_METHODS, DEFAULT_CAM_METHOD
from ..errors import UsageError
from ..models.cam_target import CamTarget, find_cam_target
from ..models.meta import BundleMeta
from .answers import Prediction, Source


class Explainable(Protocol):
    """What maps are made from: a ``Predictor`` (named by shape, not imported: the predictor
    builds explainers, so importing it here would make the two modules import each other)."""

    module: torch.nn.Module
    meta: BundleMeta

    def to_input(self, images: np.ndarray) -> torch.Tensor: ...


class Explaining(Protocol):
    """A ``Predictor``, as ``explain_batch`` uses it (see ``Explainable``)."""

    @property
    def class_names(self) -> list[str]: ...

    def load_image(self, source: Source) -> np.ndarray: ...

    def explain_pixels(
        self,
        images: np.ndarray,
        class_name: str | None,
        top_k: int,
        method: str,
        target_layer: str | None,
        tta: bool = False,
    ) -> tuple[list[Prediction], list[int], np.ndarray]: ...


def cam_class(method: str) -> type:
    if method not in CAM_METHODS:
        raise UsageError(f"unknown --method {method!r}; choose from {', '.join(CAM_METHODS)}")
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[method])


class Explainer:
    """Class-activation maps of one bundle with one method on one layer."""

    def __init__(
        self, model: Explainable, method: str = DEFAULT_CAM_METHOD, target_layer: str | None = None
    ) -> None:
        self.cam_type = cam_class(method)
        self.method = method
        self.model = model
        self.module = copy.deepcopy(model.module).eval().requires_grad_(False)
        self.target: CamTarget = find_cam_target(self.module, model.meta.image_size, target_layer)
        self.layer = self.module.get_submodule(self.target.layer)
        self._lock = threading.Lock()

    def heatmaps(self, pixels: np.ndarray, class_indices: Sequence[int]) -> np.ndarray:
        """(B, H, W) float32 maps in [0, 1], one per uint8 (B, H, W, 3) image, for the class
        given for each image; H x W is the model's input size."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        if len(pixels) != len(class_indices):
            raise ValueError(f"{len(pixels)} images but {len(class_indices)} classes")
        targets = [ClassifierOutputTarget(int(i)) for i in class_indices]
        # Gradients are needed even when the caller runs under inference_mode / no_grad.
        with self._lock, torch.inference_mode(False), torch.enable_grad():
            x = self.model.to_input(pixels)
            # The weights are frozen, so the layer's output is made the leaf that gradients
            # stop at: the backward pass runs from the logits down to this layer only.
            cut = self.layer.register_forward_hook(
                lambda _m, _i, out: out.detach().requires_grad_(True).clone()
            )
            cam = self.cam_type(self.module, [self.layer], self.target.reshape_transform())
            try:
                maps = cam(input_tensor=x, targets=targets)
            finally:
                cam.activations_and_grads.release()
                cut.remove()
        return np.asarray(maps, dtype=np.float32)


def overlay(image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The heatmap (jet colours) blended onto the uint8 RGB image."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(
        image.astype(np.float32) / 255.0, heatmap, use_rgb=True, image_weight=image_weight
    )


@dataclass
class Explanation:
    source: str
    image: np.ndarray  # (H, W, 3) uint8, the photo as the model saw it
    heatmap: np.ndarray  # (H, W) float32 in [0, 1]
    class_name: str  # the class the heatmap is for
    top: Prediction  # [(label, probability), ...] best first

    def overlay(self, image_weight: float = 0.5) -> np.ndarray:
        return overlay(self.image, self.heatmap, image_weight)


def explain_batch(
    predictor: Explaining,
    pixels: np.ndarray,
    sources: Sequence[str],
    class_name: str | None = None,
    top_k: int = 3,
    method: str = DEFAULT_CAM_METHOD,
    target_layer: str | None = None,
    tta: bool = False,
) -> list[Explanation]:
    """Explanations of decoded uint8 (B, H, W, 3) images (see ``Predictor.explain_pixels``)."""
    tops, classes, maps = predictor.explain_pixels(
        pixels, class_name, top_k, method, target_layer, tta
    )
    return [
        Explanation(str(s), image, heat, predictor.class_names[i], top)
        for s, image, heat, i, top in zip(sources, pixels, maps, classes, tops, strict=True)
    ]


def explain_image(
    predictor: Explaining,
    image: Source,
    class_name: str | None = None,
    top_k: int = 3,
    method: str = DEFAULT_CAM_METHOD,
    target_layer: str | None = None,
) -> Explanation:
    """One photo (a path or a PIL image). Raises for an unreadable image."""
    pixels = predictor.load_image(image)[None]
    name = str(image) if isinstance(image, str | Path) else "<image>"
    return explain_batch(predictor, pixels, [name], class_name, top_k, method, target_layer)[0]
