"""What every backend and the registry share: the built-model record, ImageNet statistics
and the classifier finder.

It imports nothing else of ``scenes.models``, so the registry can import the backends and the
backends can import this module: imports run one way (registry -> backends -> base).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from torch import nn

from ..errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backend",
    "BuiltModel",
    "last_linear",
]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class BuiltModel:
    """A model with its head replaced, plus what inference needs to preprocess inputs."""

    module: nn.Module
    backend: str
    architecture: str
    head: str  # dotted name of the replaced classifier layer
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    interpolation: str = "bilinear"
    weights: str | None = None  # where the starting weights came from
    # Backend-specific data needed to rebuild the network from a bundle (the HF config).
    backend_config: dict | None = None

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.module.get_submodule(self.head).parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        head_ids = {id(p) for p in self.head_parameters()}
        return [p for p in self.module.parameters() if id(p) not in head_ids]


class Backend(Protocol):
    def names(self) -> list[str]: ...

    # options: image_size, class_names, backend_config; a backend ignores those it needs not.
    def build(
        self, name: str, num_classes: int, pretrained: bool, weights: str, **options: object
    ) -> BuiltModel: ...


def last_linear(module: nn.Module) -> str:
    """Dotted name of the last nn.Linear: the classifier of every torchvision classifier
    except SqueezeNet (a conv head), which we do not support."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(module).__name__} has no linear classifier layer to replace")
    return names[-1]


class WithFeatures(nn.Module):
    """``module`` answering (logits, features): the features are the input of its classifier
    layer ``head``, flattened (the penultimate activations). What the acceptance of unknown
    photos measures, and what an exported graph returns beside the logits."""

    def __init__(self, module: nn.Module, head: str):
        super().__init__()
        self.module = module
        self.head = module.get_submodule(head)

    def forward(self, x):
        captured = []
        hook = self.head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
        try:
            logits = self.module(x)
        finally:
            hook.remove()
        return logits, captured[-1].flatten(1)
