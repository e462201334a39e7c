"""Augmentation presets applied to whole uint8 batches on the training device (kornia).

A preset is a list of steps; each step is applied to each image of the batch independently
with its own probability, and every random parameter is drawn per image. All the randomness
of one batch comes from one CPU ``torch.Generator`` seeded by (seed, epoch, batch index,
rank) (``batch_generator``), never from the global RNG: the same key draws the same
parameters with any number of loader workers, in an uninterrupted or a resumed run, and on
any device (they are drawn on the CPU, a few numbers per image, and moved to the images'
device; the pixels never leave it), and the global RNG (dropout) is left as it was.

Presets:

- ``classic``: the original project's five steps, each with probability ``augment.p``:
  horizontal flip; shift-scale-rotate (affine: rotation up to 10 degrees, shift up to 5% of
  the size, scale 0.85-1.15); gamma 0.8-1.2; rotation up to 20 degrees; pixel dropout (1% of
  the pixels set to black). Geometric steps interpolate bilinearly and fill with black.
- ``trivialaugment``: a horizontal flip (probability 0.5), then TrivialAugment (Mueller &
  Hutter 2021, torchvision's ``TrivialAugmentWide`` ranges): **each image** gets one operation
  drawn uniformly from the list below at a magnitude drawn uniformly from its range. (kornia's
  own ``TrivialAugment`` draws one operation per *call*, so a whole batch would share it; here
  each operation runs once per batch on the images that drew it.) Differences from
  torchvision's per-image version: magnitudes are continuous rather than 31 bins, shears are
  about the centre rather than the corner, translation is up to 32/224 of the size (torchvision:
  32 pixels at any size), interpolation is bilinear rather than nearest.
- ``none``: the batch is only converted to float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

PRESETS = ("none", "classic", "trivialaugment")

# An operation: float images in [0, 1], (n, 3, H, W) on any device, and the generator that
# supplies its random parameters -> augmented images of the same shape.
Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def batch_generator(seed: int, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one training batch: a pure function of its four keys."""
    entropy = [int(v) & 0xFFFF_FFFF_FFFF_FFFF for v in (seed, epoch, batch, rank)]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator))


class KorniaOp:
    """A ``kornia.augmentation`` module (built with p=1) whose random parameters are drawn on
    the CPU from the caller's generator, then moved to the images' device.

    kornia samples from the global torch RNG of its "rng device" (the CPU unless the module is
    moved): the draw happens under a forked CPU RNG seeded from ``generator``, so it neither
    depends on nor disturbs the global state. The module is never moved to the GPU.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_draw_seed(generator))
            params = self.module.forward_parameters(images.shape)
        params = {
            k: v.to(images.device) if isinstance(v, torch.Tensor) else v for k, v in params.items()
        }
        return self.module(images, params=params)


class PixelDropout:
    """Set ``fraction`` of each image's pixels (all channels) to black: ``fraction * H * W``
    positions per image, drawn uniformly (with replacement, so a handful fewer may be distinct).
    A fixed count of drawn positions instead of a coin per pixel: a few hundred indices per
    image to draw on the CPU and send to the device, not a random number for every pixel."""

    def __init__(self, fraction: float = 0.01):
        self.fraction = fraction

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        count = max(1, round(self.fraction * height * width))
        positions = torch.randint(0, height * width, (n, count), generator=generator)
        keep = torch.ones(n, height * width, dtype=images.dtype, device=images.device)
        keep.scatter_(1, positions.to(images.device), 0.0)
        return images * keep.view(n, 1, height, width)


def _identity(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return images


class OneOfPerImage:
    """Each image gets one of ``ops``, drawn uniformly per image; each operation then runs once,
    on the images that drew it (a loop over the operations, never over the images)."""

    def __init__(self, ops: Sequence[tuple[str, Op]]):
        self.ops = list(ops)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        choice = torch.randint(0, len(self.ops), (images.shape[0],), generator=generator)
        out = images.clone()
        for k, (_, op) in enumerate(self.ops):
            rows = torch.nonzero(choice == k).squeeze(1)
            if rows.numel():
                rows = rows.to(images.device)
                out[rows] = op(images[rows], generator)
        return out


@dataclass(frozen=True)
class Step:
    name: str
    p: float  # probability, per image
    op: Op


class BatchAugment:
    """uint8 (B, 3, H, W) on any device -> augmented float32 (B, 3, H, W) in [0, 1] on the
    same device, which the model's normalisation (``normalize_batch``) takes as it is: the
    conversion to float that it would do anyway happens here, once, and the augmented pixels
    are not rounded back to 8 bits. Evaluation and serving still hand it uint8 images."""

    def __init__(self, preset: str, steps: Sequence[Step]):
        self.preset = preset
        self.steps = list(steps)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"augmentation expects a uint8 (batch, 3, H, W) tensor, got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        x = to_unit_float(images)
        for step in self.steps:
            x = apply_with_probability(step.op, step.p, x, generator)
        return x

    def single_steps(self) -> list[tuple[str, Op]]:
        """Every operation this preset can apply, by name, to be shown alone at probability 1
        (the augmentation sheet): its steps, with a per-image choice of operations spelled out
        into its operations (bar identity)."""
        singles = []
        for step in self.steps:
            if isinstance(step.op, OneOfPerImage):
                singles += [(name, op) for name, op in step.op.ops if op is not _identity]
            else:
                singles.append((step.name, step.op))
        return singles


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


def apply_with_probability(
    op: Op, p: float, images: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``op`` on each image with probability ``p``: run once, on the images that drew it."""
    chosen = torch.rand(images.shape[0], generator=generator) < p
    if bool(chosen.all()):
        return op(images, generator)
    rows = torch.nonzero(chosen).squeeze(1)
    if rows.numel() == 0:
        return images
    rows = rows.to(images.device)
    images[rows] = op(images[rows], generator)
    return images


def classic_steps(p: float) -> list[Step]:
    """The original project's augmentations, each applied alone with probability ``p``."""
    import kornia.augmentation as K

    return [
        Step("horizontal flip", p, KorniaOp(K.RandomHorizontalFlip(p=1.0))),
        Step(
            "shift-scale-rotate",
            p,
            KorniaOp(K.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.85, 1.15), p=1.0)),
        ),
        Step("gamma", p, KorniaOp(K.RandomGamma(gamma=(0.8, 1.2), p=1.0))),
        Step("rotate", p, KorniaOp(K.RandomRotation(degrees=20.0, p=1.0))),
        Step("pixel dropout", p, PixelDropout(0.01)),
    ]


def trivialaugment_ops() -> list[tuple[str, Op]]:
    """TrivialAugmentWide's operations and magnitude ranges, as kornia modules (p=1)."""
    import kornia.augmentation as K

    shear = math.degrees(math.atan(0.99))  # torchvision: shear factor up to 0.99
    shift = 32 / 224  # torchvision: 32 pixels, designed for 224-pixel images
    factor = (0.01, 1.99)  # torchvision: 1 +- up to 0.99, for the enhancement operations
    return [
        ("identity", _identity),
        ("shear x", KorniaOp(K.RandomShear((-shear, shear, 0.0, 0.0), p=1.0))),
        ("shear y", KorniaOp(K.RandomShear((0.0, 0.0, -shear, shear), p=1.0))),
        ("translate x", KorniaOp(K.RandomTranslate((-shift, shift), (0.0, 0.0), p=1.0))),
        ("translate y", KorniaOp(K.RandomTranslate((0.0, 0.0), (-shift, shift), p=1.0))),
        ("rotate", KorniaOp(K.RandomRotation(degrees=135.0, p=1.0))),
        # ColorJitter's steps are torchvision's formulas (RandomBrightness is additive)
        ("brightness", KorniaOp(K.ColorJitter(brightness=factor, p=1.0))),
        ("color", KorniaOp(K.ColorJitter(saturation=factor, p=1.0))),
        ("contrast", KorniaOp(K.ColorJitter(contrast=factor, p=1.0))),
        ("sharpness", KorniaOp(K.RandomSharpness(sharpness=factor, p=1.0))),
        ("posterize", KorniaOp(K.RandomPosterize(bits=(1.5, 8.0), p=1.0))),  # 2..8 bits
        (
            "solarize",
            KorniaOp(K.RandomSolarize(thresholds=(0.0, 1.0), additions=(0.0, 0.0), p=1.0)),
        ),
        ("autocontrast", KorniaOp(K.RandomAutoContrast(p=1.0))),
        ("equalize", KorniaOp(K.RandomEqualize(p=1.0))),
    ]


def make_batch_augment(preset: str, p: float = 0.25) -> BatchAugment:
    """The preset's steps; ``p`` is the probability of each classic step."""
    if preset == "none":
        return BatchAugment(preset, [])
    if preset == "classic":
        return BatchAugment(preset, classic_steps(p))
    if preset == "trivialaugment":
        import kornia.augmentation as K

        flip = Step("horizontal flip", 0.5, KorniaOp(K.RandomHorizontalFlip(p=1.0)))
        return BatchAugment(
            preset, [flip, Step("trivialaugment", 1.0, OneOfPerImage(trivialaugment_ops()))]
        )
    raise ConfigError(f"unknown augmentation preset {preset!r}; choose from {', '.join(PRESETS)}")
