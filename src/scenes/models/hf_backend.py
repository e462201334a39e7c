"""``hf:ID``: any Hugging Face ``AutoModelForImageClassification`` checkpoint.

``ID`` is a hub id (``google/vit-base-patch16-224``, found in the local HF cache when
offline) or a directory written by ``save_pretrained``. The classifier is re-made for our
classes with ``id2label``/``label2id``; preprocessing comes from the checkpoint's image
processor. The model's config travels in ``model.json`` (``backend_config``), so a bundle
rebuilds with no other file and no network.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..errors import (
    TRAIN_WEIGHTS_FIXES,
    BundleError,
    ConfigError,
    UsageError,
    WeightsUnavailableError,
)
from .base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BuiltModel,
    last_linear,
)
from .weights import find_local, weights_dirs

log = logging.getLogger(__name__)


class HFLogits(nn.Module):
    """Our training loop, export and inference call ``model(x)`` and expect logits."""

    def __init__(self, model: nn.Module, interpolate_pos_encoding: bool = False) -> None:
        super().__init__()
        self.hf = model
        self.interpolate_pos_encoding = interpolate_pos_encoding

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.interpolate_pos_encoding:
            out = self.hf(pixel_values=pixel_values, interpolate_pos_encoding=True)
        else:
            out = self.hf(pixel_values=pixel_values)
        return out.logits


def label_maps(class_names: list[str]) -> tuple[dict[int, str], dict[str, int]]:
    return dict(enumerate(class_names)), {c: i for i, c in enumerate(class_names)}


def config_to_dict(config: Any) -> dict[str, Any]:
    """The full config as plain JSON data (what ``model.json`` stores)."""
    return json.loads(config.to_json_string(use_diff=False))


def config_from_dict(data: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    data = dict(data)
    model_type = data.pop("model_type", None)
    if not model_type:
        raise BundleError("backend_config in model.json has no model_type; the bundle is damaged")
    return AutoConfig.for_model(model_type, **data)


def _unavailable(name: str, what: str, exc: BaseException) -> WeightsUnavailableError:
    from huggingface_hub.constants import HF_HUB_CACHE

    return WeightsUnavailableError(
        f"could not get the {what} of hf:{name}: {type(exc).__name__}: {exc}.\n"
        f"Either download it once online into the Hugging Face cache ({HF_HUB_CACHE}; set "
        "HF_HOME to choose another), or name a local directory written by save_pretrained, "
        + TRAIN_WEIGHTS_FIXES
    )


def processor_preprocessing(name: str, revision: str | None) -> tuple[list, list, str]:
    """(mean, std, interpolation) that make our uint8 -> float path equal the processor's."""
    from transformers import AutoImageProcessor

    try:
        proc = AutoImageProcessor.from_pretrained(name, revision=revision, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        log.warning("hf:%s has no usable image processor (%s); using ImageNet mean/std", name, exc)
        return list(IMAGENET_MEAN), list(IMAGENET_STD), "bilinear"
    mean = list(getattr(proc, "image_mean", None) or IMAGENET_MEAN)
    std = list(getattr(proc, "image_std", None) or IMAGENET_STD)
    if not getattr(proc, "do_normalize", True):
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    # The processor computes (x * rescale - mean) / std on 0..255 pixels; we compute
    # (x / 255 - mean') / std'. Equal when mean' = mean / (255 * rescale), same for std.
    rescale = getattr(proc, "rescale_factor", 1 / 255) if getattr(proc, "do_rescale", True) else 1
    scale = 255.0 * float(rescale)
    mean = [float(m) / scale for m in mean]
    std = [float(s) / scale for s in std]
    return mean, std, resample_name(getattr(proc, "resample", None))


def resample_name(resample: Any) -> str:
    """PIL resample code / enum / torchvision InterpolationMode -> key of data.images.RESAMPLING."""
    if resample is None:
        return "bilinear"
    value = getattr(resample, "value", resample)
    if isinstance(value, str):
        return value.lower() if value.lower() in _NAMES.values() else "bilinear"
    return _NAMES.get(int(value), "bilinear")


_NAMES = {int(m): m.name.lower() for m in Image.Resampling}


class HFBackend:
    """Hugging Face image classifiers; the hub cannot be listed offline, so no names."""

    def names(self) -> list[str]:
        return []

    def build(
        self,
        name: str,
        num_classes: int,
        pretrained: bool,
        weights: str,
        image_size: int | None = None,
        class_names: list[str] | None = None,
        backend_config: dict | None = None,
        weights_dir: str | None = None,
        **_: object,
    ) -> BuiltModel:
        from transformers import AutoModelForImageClassification

        # A save_pretrained folder of this id in a local weights folder stands in for the hub.
        local = find_local(name, weights_dirs(weights_dir)) if backend_config is None else None
        source = str(local) if local is not None and (local / "config.json").is_file() else name

        labels = list(class_names or [f"class_{i}" for i in range(num_classes)])
        if len(labels) != num_classes:
            raise ValueError(f"{len(labels)} class names given for {num_classes} classes")
        id2label, label2id = label_maps(labels)
        revision = None if weights in ("DEFAULT", "", None) else weights
        mean, std, interpolation = list(IMAGENET_MEAN), list(IMAGENET_STD), "bilinear"

        if backend_config is not None:  # rebuilding a bundle: everything is in model.json
            config = config_from_dict(backend_config)
            model = AutoModelForImageClassification.from_config(config)
        else:
            config = self._config(source, revision, id2label, label2id)
            mean, std, interpolation = processor_preprocessing(source, revision)
            if pretrained:
                model = self._pretrained(source, revision, config)
            else:
                model = AutoModelForImageClassification.from_config(config)
        if model.config.num_labels != num_classes:
            raise ValueError(
                f"hf:{name} config has {model.config.num_labels} labels, expected {num_classes}"
            )

        wrapper = HFLogits(model, needs_pos_interpolation(model, image_size))
        if image_size is not None:
            check_input_size(wrapper, name, image_size)
        built = BuiltModel(wrapper, "hf", name, last_linear(wrapper), mean, std, interpolation)
        built.backend_config = config_to_dict(model.config)
        if pretrained and backend_config is None:
            built.weights = f"hf:{name}" + (f"@{revision}" if revision else "")
            built.weights += f" ({source})" if source != name else ""
        return built

    def _config(
        self,
        name: str,
        revision: str | None,
        id2label: dict[int, str],
        label2id: dict[str, int],
    ) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(
                name,
                revision=revision,
                id2label=id2label,
                label2id=label2id,
                trust_remote_code=False,  # a Hub repo's Python is code from elsewhere
            )
        except OSError as exc:
            raise _unavailable(name, "config (config.json)", exc) from exc
        except ValueError as exc:
            if "trust_remote_code" not in str(exc):
                raise
            raise UsageError(
                f"hf:{name} is defined by the repository's own Python code (its config.json "
                "has an auto_map); scenes never runs code that comes with a model. Choose a "
                "model whose architecture transformers itself has (ViT, ConvNeXt, Swin, ...)"
            ) from None

    def _pretrained(self, name: str, revision: str | None, config: Any) -> nn.Module:
        from transformers import AutoModelForImageClassification

        try:
            # ignore_mismatched_sizes lets the checkpoint's classifier (e.g. 1000 ImageNet
            # classes) be replaced; we check below that nothing else was re-initialised.
            model, info = AutoModelForImageClassification.from_pretrained(
                name,
                revision=revision,
                config=config,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                trust_remote_code=False,
            )
        except OSError as exc:
            raise _unavailable(name, "pretrained weights", exc) from exc
        head = last_linear(model)
        stray = [
            k[0] if isinstance(k, tuple) else k
            for k in (*info.get("mismatched_keys", ()), *info.get("missing_keys", ()))
        ]
        stray = [k for k in stray if not k.startswith(head + ".")]
        if stray:
            raise UsageError(
                f"hf:{name}: {len(stray)} weights outside the classifier did not fit and would "
                f"be re-initialised (e.g. {sorted(stray)[:3]}); is this an image classifier "
                "checkpoint for this architecture?"
            )
        return model


def needs_pos_interpolation(model: nn.Module, image_size: int | None) -> bool:
    """ViT-like models fixed to config.image_size can interpolate their position embeddings."""
    native = getattr(model.config, "image_size", None)
    if image_size is None or native is None or native == image_size:
        return False
    return "interpolate_pos_encoding" in inspect.signature(model.forward).parameters


def check_input_size(wrapper: HFLogits, name: str, image_size: int) -> None:
    """Fail now, with the fix, rather than at the first training batch."""
    channels = getattr(wrapper.hf.config, "num_channels", 3)
    was_training = wrapper.training
    wrapper.eval()
    try:
        with torch.no_grad():
            wrapper(torch.zeros(1, channels, image_size, image_size))
    except (ValueError, RuntimeError) as exc:
        native = getattr(wrapper.hf.config, "image_size", None)
        fix = f"; set --image-size {native}" if native else ""
        raise ConfigError(f"hf:{name} cannot take {image_size} px images ({exc}){fix}") from None
    finally:
        wrapper.train(was_training)
