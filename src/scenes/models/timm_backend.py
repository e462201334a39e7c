"""``timm:NAME[.TAG]``: any timm model, preprocessing from the weights' own pretrained config.

timm replaces the classifier itself (``num_classes=``) and tells which layer it is, and its
``pretrained_cfg`` says which mean/std/interpolation the weights were trained with, so
inference can never disagree with training (GUIDE section 7).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import TRAIN_WEIGHTS_FIXES, ConfigError, WeightsUnavailableError
from .base import IMAGENET_MEAN, IMAGENET_STD, BuiltModel, last_linear
from .weights import find_local, load_state_file, weights_dirs


def hf_cache_hint() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(Path(HF_HUB_CACHE))


def full_name(name: str, weights: str) -> str:
    """``convnext_tiny`` + ``fb_in1k`` -> ``convnext_tiny.fb_in1k``; DEFAULT keeps timm's default."""
    arch, _, tag = name.partition(".")
    if weights in ("DEFAULT", "", None):
        return name
    if tag and tag != weights:
        raise ConfigError(
            f"timm:{name} already names the weights tag {tag!r}, but model.weights={weights!r}; "
            "give the tag in one place only"
        )
    return f"{arch}.{weights}"


def head_name(module: nn.Module) -> str:
    """Dotted name of the classifier timm built (``head.fc``, ``fc``, ``head``, ...)."""
    classifier = module.get_classifier() if hasattr(module, "get_classifier") else None
    if isinstance(classifier, nn.Linear):
        for name, sub in module.named_modules():
            if sub is classifier:
                return name
    return last_linear(module)


def local_file(cfg, folders: list[Path]) -> Path | None:
    """These weights in a local weights folder: by their URL's file name, or as the hub
    repository's ``model.safetensors`` (``<hf_hub_id>/model.safetensors``)."""
    if cfg is None:
        return None
    names = []
    if cfg.url:
        names.append(Path(cfg.url).name)
    if cfg.hf_hub_id:
        names.append(f"{cfg.hf_hub_id}/{cfg.hf_hub_filename or 'model.safetensors'}")
    for name in names:
        found = find_local(name, folders)
        if found is not None and found.is_file():
            return found
    return None


def local_overlay(local: Path, cfg) -> dict:
    """timm's ``pretrained_cfg_overlay`` that loads ``local`` instead of downloading.

    A torch file is read here, as data only (``load_state_file``), and handed to timm as a
    state dict: timm's own file loader unpickles in full before timm 1.0.26. Files that a
    model reads itself (``custom_load``, e.g. ``.npz``) go to timm by name."""
    if cfg.custom_load or local.suffix not in (".pth", ".pt", ".bin", ".safetensors"):
        return {"file": str(local)}
    return {"state_dict": load_state_file(local)}


class TimmBackend:
    """Any model of ``timm.list_models()``; a ``.tag`` suffix or model.weights picks weights."""

    def names(self) -> list[str]:
        import timm

        return timm.list_models()

    def build(
        self,
        name: str,
        num_classes: int,
        pretrained: bool,
        weights: str,
        image_size: int | None = None,
        weights_dir: str | None = None,
        **_: object,
    ) -> BuiltModel:
        import timm
        from timm.models import get_pretrained_cfg

        name = full_name(name, weights)
        arch = name.partition(".")[0]
        if not timm.is_model(arch):
            close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise ConfigError(f"unknown timm model {arch!r}{hint} (see `scenes models 'timm:*'`)")
        try:
            cfg = get_pretrained_cfg(name)
        except RuntimeError as exc:  # an unknown tag
            tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
            raise ConfigError(f"{exc} Known tags: {', '.join(tags) or 'none'}") from None

        kwargs: dict[str, object] = {"num_classes": num_classes}
        if image_size is not None and cfg is not None and cfg.fixed_input_size:
            # ViT-like models bake the input size into their position embeddings; timm
            # resamples pretrained ones to the training size we ask for.
            kwargs["img_size"] = image_size
        local = local_file(cfg, weights_dirs(weights_dir)) if pretrained else None
        if local is not None:
            kwargs["pretrained_cfg_overlay"] = local_overlay(local, cfg)
        module = self._create(name, pretrained, kwargs, cfg)
        module.pretrained_cfg.pop("state_dict", None)  # loaded: the tensors need not stay twice
        data = module.pretrained_cfg
        built = BuiltModel(
            module,
            "timm",
            name,
            head_name(module),
            mean=[float(v) for v in data.get("mean", IMAGENET_MEAN)],
            std=[float(v) for v in data.get("std", IMAGENET_STD)],
            interpolation=str(data.get("interpolation", "bilinear")),
        )
        if pretrained:
            built.weights = f"timm:{data.get('architecture', arch)}.{data.get('tag', '')}"
            built.weights += f" ({local})" if local is not None else ""
        return built

    def _create(self, name: str, pretrained: bool, kwargs: dict, cfg) -> nn.Module:
        import timm

        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs)
        except TypeError as exc:
            if "img_size" in kwargs and "img_size" in str(exc):
                raise ConfigError(
                    f"timm:{name} needs a fixed input size of {cfg.input_size[1]} px and cannot "
                    f"be built for {kwargs['img_size']} px; set --image-size "
                    f"{cfg.input_size[1]}"
                ) from None
            raise
        except Exception as exc:
            if not pretrained:
                raise
            source = (cfg.hf_hub_id or cfg.url) if cfg is not None else name
            raise WeightsUnavailableError(
                f"could not get pretrained weights for timm:{name} (from {source}): "
                f"{type(exc).__name__}: {exc}.\n"
                f"Either download them once online into the Hugging Face cache "
                f"({hf_cache_hint()}; set HF_HOME to choose another), " + TRAIN_WEIGHTS_FIXES
            ) from exc
