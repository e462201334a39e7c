"""Which layer a class-activation map is computed on, for any backend's model.

One dry forward pass on a blank image records what every module outputs, in the order they
finish; the rule is then the same for every family, with no table of architecture names:

- **convolutional networks** (torchvision and timm CNNs, ConvNeXt, EfficientNet, RegNet,
  Swin's and MaxViT's final stage, Hugging Face ConvNeXt/ResNet): the last spatial feature map
  before global pooling, taken at the outermost module that returns it (``layer4``,
  ``features``, ``stages``). A 1x1 map (a tiny input) carries no location, so the last larger
  one is taken. Channels-last layouts ``(B, H, W, C)`` (Swin) are permuted.
- **transformers over tokens** (ViT, DeiT, BEiT, Swin in Hugging Face, torchvision ViT): the
  input norm of the last attention block (timm ``blocks[-1].norm1``, Hugging Face
  ``layernorm_before``, torchvision ``ln_1``). Later layers see the class token only through
  the classifier, so their patch tokens get no gradient; this one feeds the attention that
  mixes patches into the class token. Tokens ``(B, 1+N, C)`` are reshaped to ``(B, C, g, g)``
  after dropping the class/register tokens.

Inputs are square (``image_size`` x ``image_size``, as every bundle resizes), which makes the
layout of a 4-D map and the grid of a token sequence unambiguous.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import UsageError

Layout = Literal["nchw", "nhwc", "tokens"]
POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


class CamTargetError(UsageError):
    """No usable layer, or the one asked for cannot carry a class-activation map."""


@dataclass(frozen=True)
class CamTarget:
    layer: str  # dotted name inside the model, e.g. "layer4" or "blocks.11.norm1"
    layout: Layout
    grid: int  # side of the square map the heatmap is computed on
    prefix_tokens: int = 0  # class/register tokens before the patch tokens (tokens layout)

    def reshape_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """What turns the layer's output into (B, C, grid, grid); None when it already is."""
        if self.layout == "nchw":
            return None
        if self.layout == "nhwc":
            return lambda t: t.permute(0, 3, 1, 2)
        prefix, grid = self.prefix_tokens, self.grid
        return lambda t: (
            t[:, prefix:, :].reshape(t.shape[0], grid, grid, t.shape[2]).permute(0, 3, 1, 2)
        )


@dataclass(eq=False)
class _Call:
    name: str
    module: nn.Module
    output: object


def _record_calls(module: nn.Module, image_size: int) -> list[_Call]:
    """Every submodule's output for one blank image, in the order the modules finished."""
    calls: list[_Call] = []
    handles = []
    for name, sub in module.named_modules():
        if name:
            handles.append(
                sub.register_forward_hook(
                    lambda m, _inputs, out, name=name: calls.append(_Call(name, m, out))
                )
            )
    param = next(module.parameters())
    x = torch.zeros(1, 3, image_size, image_size, dtype=param.dtype, device=param.device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return calls


def _map_layout(output: object) -> tuple[Layout, int] | None:
    """(layout, grid) when ``output`` is a square spatial map (B, C, g, g) or (B, g, g, C)."""
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        return None
    _, a, b, c = output.shape
    if b == c:
        return "nchw", int(b)
    if a == b:
        return "nhwc", int(a)
    return None


def _token_layout(output: object, prefix: int | None) -> tuple[int, int] | None:
    """(grid, prefix_tokens) when ``output`` is (B, prefix + g*g, C) with g > 1."""
    if not isinstance(output, torch.Tensor) or output.dim() != 3:
        return None
    tokens = int(output.shape[1])
    if prefix is None:  # class/register tokens are fewer than a row of patches
        grid = math.isqrt(tokens)
        prefix = tokens - grid * grid
    else:
        grid = math.isqrt(max(tokens - prefix, 0))
    if grid < 2 or grid * grid + prefix != tokens:
        return None
    return grid, prefix


def _declared_prefix(module: nn.Module) -> int | None:
    """timm ViTs say how many class/register tokens they prepend."""
    value = getattr(module, "num_prefix_tokens", None)
    return int(value) if isinstance(value, int) else None


def _is_attention(module: nn.Module) -> bool:
    return "attention" in type(module).__name__.lower()


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()


def _target_from_call(call: _Call, prefix: int | None) -> CamTarget | None:
    if isinstance(call.module, POOLS):
        return None
    layout = _map_layout(call.output)
    if layout is not None and layout[1] > 1:
        return CamTarget(call.name, *layout)
    tokens = _token_layout(call.output, prefix)
    if tokens is not None:
        return CamTarget(call.name, "tokens", *tokens)
    return None


def _last_map_target(calls: list[_Call]) -> tuple[int, CamTarget] | None:
    """The last spatial map (larger than 1x1), at the outermost module that returns it."""
    for i in range(len(calls) - 1, -1, -1):
        call = calls[i]
        if isinstance(call.module, POOLS):
            continue
        layout = _map_layout(call.output)
        if layout is None or layout[1] < 2:
            continue
        same = [
            (c.name.count("."), j, c.name)
            for j, c in enumerate(calls)
            if c.output is call.output and not isinstance(c.module, nn.Identity | nn.Dropout)
        ]
        return i, CamTarget(min(same)[2], *layout)
    return None


def _last_attention_norm(calls: list[_Call], prefix: int | None) -> CamTarget | None:
    """The norm that feeds the last attention module: in the nearest enclosing block (the
    model itself for an attention-pooling head), the first norm that ran before it."""
    attention = [i for i, c in enumerate(calls) if _is_attention(c.module)]
    if not attention:
        return None
    last = attention[-1]
    parts = calls[last].name.split(".")
    for depth in range(len(parts) - 1, -1, -1):
        block = ".".join(parts[:depth])
        for call in calls[:last]:
            if call.name.rpartition(".")[0] == block and _is_norm(call.module):
                tokens = _token_layout(call.output, prefix)
                if tokens is not None:
                    return CamTarget(call.name, "tokens", *tokens)
    return None


def find_cam_target(module: nn.Module, image_size: int, layer: str | None = None) -> CamTarget:
    """The layer to compute class-activation maps on (see the module docstring), or ``layer``
    (a dotted module name) checked to give a spatial map or patch tokens."""
    if layer is not None:
        _check_exists(module, layer)
    calls = _record_calls(module, image_size)
    prefix = _declared_prefix(module)
    if layer is not None:
        return _checked_override(calls, layer, prefix)

    found = _last_map_target(calls)
    last_map_index = found[0] if found else -1
    tokens_after = any(
        _token_layout(c.output, prefix) is not None for c in calls[last_map_index + 1 :]
    )
    if tokens_after:
        target = _last_attention_norm(calls, prefix)
        if target is not None:
            return target
    elif found is not None:
        return found[1]
    raise CamTargetError(
        f"found no layer of {type(module).__name__} that keeps a spatial map or patch tokens "
        f"at {image_size} px; name one with --target-layer (a dotted module name)"
    )


def _check_exists(module: nn.Module, layer: str) -> None:
    names = [n for n, _ in module.named_modules() if n]
    if layer not in names:
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise CamTargetError(f"the model has no layer {layer!r}{hint}")


def _checked_override(calls: list[_Call], layer: str, prefix: int | None) -> CamTarget:
    mine = [c for c in calls if c.name == layer]
    if not mine:
        raise CamTargetError(f"layer {layer!r} does not run in the model's forward pass")
    if len(mine) > 1:
        raise CamTargetError(
            f"layer {layer!r} runs {len(mine)} times per image (a shared module); "
            "choose a layer that runs once, e.g. its parent block"
        )
    target = _target_from_call(mine[0], prefix)
    if target is None:
        output = mine[0].output
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise CamTargetError(
            f"layer {layer!r} outputs {shape}: not a square spatial map (B, C, H, W) / "
            "(B, H, W, C) larger than 1x1, nor patch tokens (B, N, C); choose another layer"
        )
    return target
