"""Build a classifier by name with a head for N classes and the right pretrained weights.

A backend knows how to list names, build an architecture, load its pretrained weights and
say which preprocessing those weights expect. Adding a family is one entry in ``BACKENDS``.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from ..errors import (
    TRAIN_WEIGHTS_FIXES,
    ConfigError,
    UsageError,
    WeightsUnavailableError,
)
from .base import (
    Backend,
    BuiltModel,
    last_linear,
)
from .hf_backend import HFBackend
from .timm_backend import TimmBackend
from .weights import check_hash_in_name, find_local, load_state_file, weights_dirs

log = logging.getLogger(__name__)


def replace_head(module: nn.Module, head: str, num_classes: int) -> None:
    old = module.get_submodule(head)
    parent_name, _, child = head.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def torch_hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


class TorchvisionBackend:
    """Any classification model in torchvision.models, weights through its weights API."""

    def names(self) -> list[str]:
        import torchvision.models as tvm

        return sorted(n for n in tvm.list_models(module=tvm) if not n.startswith("squeezenet"))

    def build(
        self,
        name: str,
        num_classes: int,
        pretrained: bool,
        weights: str,
        weights_dir: str | None = None,
        **_: object,
    ) -> BuiltModel:
        import torchvision.models as tvm

        if name not in self.names():
            close = difflib.get_close_matches(name, self.names(), n=6, cutoff=0.6)
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise ConfigError(f"unknown torchvision model {name!r}{hint} (see `scenes models`)")
        module = tvm.get_model(name, weights=None)
        built = BuiltModel(module, "torchvision", name, last_linear(module))
        if pretrained:
            chosen, source = self._load_pretrained(name, weights, module, weights_dirs(weights_dir))
            meta = chosen.transforms()
            built.mean, built.std = list(meta.mean), list(meta.std)
            built.interpolation = meta.interpolation.value
            built.weights = f"torchvision:{chosen} ({source})"
        replace_head(module, built.head, num_classes)
        return built

    def _load_pretrained(self, name: str, weights: str, module: nn.Module, folders: list[Path]):
        """Load the weights into ``module``; returns (the weights enum member, where from).

        ``DEFAULT`` means the best ImageNet weights of this model already on this machine (a
        local weights folder or torch's cache), so an offline machine starts from what it has
        without trying the network; when none is there, torchvision's DEFAULT is downloaded.
        """
        import torchvision.models as tvm

        enum = tvm.get_model_weights(name)
        folders = [*folders, torch_hub_dir()]
        if weights == "DEFAULT":
            present = [w for w in enum if find_local(Path(w.url).name, folders)]
            wanted = max(present, key=imagenet_top1) if present else enum.DEFAULT
        else:
            try:
                wanted = enum[weights]
            except KeyError:
                raise ConfigError(
                    f"model.weights={weights!r} is not a weights name of {name}; "
                    f"choose from DEFAULT, {', '.join(w.name for w in enum)}"
                ) from None
        file_name = Path(wanted.url).name
        local = find_local(file_name, folders)
        if local is not None:
            check_hash_in_name(local, f"torchvision's {wanted}", wanted.url)
            state = load_state_file(local)
            source = str(local)
        else:
            try:
                # torch.hub's own default is weights_only=False (a full pickle): say it
                state = wanted.get_state_dict(progress=True, check_hash=True, weights_only=True)
            except (URLError, OSError, RuntimeError) as exc:
                searched = ", ".join(str(f) for f in folders)
                raise WeightsUnavailableError(
                    f"could not get pretrained weights {wanted} for {name}: {exc}.\n"
                    f"Either put {file_name} (from {wanted.url}) into a weights folder "
                    f"(searched: {searched}; --set model.weights_dir=DIR or "
                    "SCENES_WEIGHTS_DIR add one), " + TRAIN_WEIGHTS_FIXES
                ) from exc
            source = f"downloaded from {wanted.url}"
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsUnavailableError(
                f"{source} does not hold {name}'s {wanted} weights: {str(exc)[:300]}"
            ) from exc
        return wanted, source


def imagenet_top1(weights) -> float:
    return float(weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1", 0.0))


BACKENDS: dict[str, Backend] = {
    "torchvision": TorchvisionBackend(),
    "timm": TimmBackend(),
    "hf": HFBackend(),
}


def split_name(name: str) -> tuple[str, str]:
    """``timm:convnext_tiny`` -> ("timm", "convnext_tiny"); no prefix means torchvision."""
    backend, sep, rest = name.partition(":")
    if not sep:
        return "torchvision", name
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown model backend {backend!r} in {name!r}; available: {', '.join(BACKENDS)}"
        )
    return backend, rest


def load_weights_file(built: BuiltModel, path: str | Path) -> None:
    """Load a local state dict; a classifier of another size (e.g. ImageNet's) is skipped."""
    state = load_state_file(path)
    own = built.module.state_dict()
    head_prefix = built.head + "."
    mismatched_head = [
        k
        for k, v in state.items()
        if k.startswith(head_prefix) and k in own and own[k].shape != v.shape
    ]
    for k in mismatched_head:
        del state[k]
    missing, unexpected = built.module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head_prefix)]
    if missing or unexpected:
        raise UsageError(
            f"{path} does not fit {built.architecture}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    built.weights = f"file:{os.path.abspath(path)}"


def build_model(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    weights: str = "DEFAULT",
    weights_file: str | Path | None = None,
    **options: object,
) -> BuiltModel:
    """A model for ``num_classes`` starting from pretrained weights, a local file, or scratch.

    ``options`` go to the backend: ``image_size`` (ViT-like models are built for it),
    ``class_names`` (HF id2label), ``backend_config`` (rebuild an HF model from a bundle).
    """
    backend, arch = split_name(name)
    built = BACKENDS[backend].build(
        arch,
        num_classes,
        pretrained=pretrained and weights_file is None,
        weights=weights,
        **{k: v for k, v in options.items() if v is not None},
    )
    if weights_file is not None:
        load_weights_file(built, weights_file)
    return built
