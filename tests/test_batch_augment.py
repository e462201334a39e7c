"""Batched augmentation (kornia) and batches drawn on the device: deterministic per
(seed, epoch, batch, rank), per-image parameters, each step doing what its name says, and
the device loader following the sampler exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scenes.data.batch_augment import (
    OneOfPerImage,
    apply_with_probability,
    batch_generator,
    make_batch_augment,
    to_unit_float,
)
from scenes.data.device_loader import DeviceBatches, images_to_device, resolve_on_device
from scenes.data.samplers import EpochShuffleSampler, LazyRows, ShardSampler
from scenes.data.transforms import normalize_batch


def noisy_batch(n: int = 8, size: int = 40, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def same_image(n: int, size: int = 40) -> torch.Tensor:
    return noisy_batch(1, size).expand(n, -1, -1, -1).contiguous()


def steps(preset: str) -> dict:
    return dict(make_batch_augment(preset, 1.0).single_steps())


# -- determinism ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["classic", "trivialaugment"])
def test_same_key_gives_the_same_batch_whatever_the_global_rng(preset):
    augment = make_batch_augment(preset, 0.5)
    images = noisy_batch(16)
    first = augment(images, batch_generator(7, 2, 5, 0))
    torch.manual_seed(123)  # the global RNG state must not matter ...
    before = torch.get_rng_state()
    second = augment(images, batch_generator(7, 2, 5, 0))
    assert torch.equal(first, second)
    assert torch.equal(
        torch.get_rng_state(), before
    )  # ... nor be disturbed (dropout draws from it)
    assert not torch.equal(first, to_unit_float(images))


@pytest.mark.parametrize("other", [(8, 2, 5, 0), (7, 3, 5, 0), (7, 2, 6, 0), (7, 2, 5, 1)])
def test_another_seed_epoch_batch_or_rank_gives_other_parameters(other):
    augment = make_batch_augment("classic", 0.5)
    images = noisy_batch(16)
    assert not torch.equal(
        augment(images, batch_generator(7, 2, 5, 0)), augment(images, batch_generator(*other))
    )


@pytest.mark.parametrize("preset", ["classic", "trivialaugment"])
def test_parameters_are_drawn_per_image(preset):
    out = make_batch_augment(preset, 1.0)(same_image(12), batch_generator(0, 0, 0))
    distinct = {bytes(image.numpy()) for image in out}
    assert len(distinct) == 12  # twelve copies of one image, twelve different results


def test_each_step_gets_its_own_coin_per_image():
    images = noisy_batch(400, size=8)
    flip = steps("classic")["horizontal flip"]
    out = apply_with_probability(flip, 0.25, to_unit_float(images), batch_generator(0, 0, 0))
    flipped = (out != to_unit_float(images)).flatten(1).any(1).sum().item()
    assert 60 <= flipped <= 140  # Binomial(400, 0.25): mean 100, sd 8.7
    unchanged = apply_with_probability(flip, 0.0, to_unit_float(images), batch_generator(0, 0, 0))
    assert torch.equal(unchanged, to_unit_float(images))


# -- what each step does -------------------------------------------------------------------
def test_output_is_the_float_batch_the_model_normalises_and_none_only_converts():
    images = noisy_batch(5, size=33)
    for preset in ("classic", "trivialaugment"):
        out = make_batch_augment(preset, 0.5)(images, batch_generator(0, 0, 0))
        assert out.dtype == torch.float32 and out.shape == images.shape
        assert out.device == images.device and 0.0 <= out.min() and out.max() <= 1.0
    none = make_batch_augment("none")(images, batch_generator(0, 0, 0))
    assert torch.equal(none, images.float() / 255)
    # the model's normalisation gives the same input for a uint8 batch and its float form
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    assert torch.allclose(normalize_batch(none, mean, std), normalize_batch(images, mean, std))
    with pytest.raises(ValueError, match="uint8"):
        make_batch_augment("classic")(images.float(), batch_generator(0, 0, 0))
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        make_batch_augment("autoaugment")


def test_parameters_follow_the_images_to_their_device():
    # Parameters are drawn on the CPU; every one must reach the images' device. A "meta"
    # tensor (shapes, no data) stands in for a GPU here: one CPU tensor left in the arithmetic
    # would raise.
    images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8, device="meta")
    out = make_batch_augment("classic", 0.5)(images, batch_generator(0, 0, 0))
    assert out.device.type == "meta" and out.dtype == torch.float32 and out.shape == images.shape


def test_classic_flip_is_a_mirror_image():
    x = to_unit_float(noisy_batch(4))
    assert torch.equal(steps("classic")["horizontal flip"](x, batch_generator(0, 0, 0)), x.flip(3))


def test_classic_gamma_raises_each_image_to_its_own_power_in_range():
    x = torch.linspace(0.05, 0.95, 3 * 20 * 20).reshape(1, 3, 20, 20).repeat(6, 1, 1, 1)
    out = steps("classic")["gamma"](x, batch_generator(0, 0, 0))
    gammas = (out.log() / x.log()).flatten(1)
    assert torch.allclose(gammas, gammas[:, :1].expand_as(gammas), atol=1e-4)  # one per image
    assert ((gammas[:, 0] >= 0.8) & (gammas[:, 0] <= 1.2)).all()
    assert len(set(gammas[:, 0].tolist())) == 6


def test_classic_pixel_dropout_blacks_out_one_percent_of_pixels_in_all_channels():
    x = to_unit_float(noisy_batch(6, size=100)).clamp(min=0.01)
    out = steps("classic")["pixel dropout"](x, batch_generator(0, 0, 0))
    dropped = out == 0
    assert torch.equal(dropped[:, 0], dropped[:, 1]) and torch.equal(dropped[:, 0], dropped[:, 2])
    share = dropped[:, 0].flatten(1).float().mean(1)
    assert ((share > 0.0095) & (share <= 0.01)).all()  # 100 positions drawn, a few may repeat
    assert torch.equal(out[~dropped], x[~dropped])
    assert not torch.equal(dropped[0], dropped[1])


@pytest.mark.parametrize(
    "name, degrees, shift, scales",
    [("shift-scale-rotate", 10, 0.05, (0.85, 1.15)), ("rotate", 20, 0.0, (1.0, 1.0))],
)
def test_classic_geometric_steps_stay_within_their_ranges(name, degrees, shift, scales):
    # A bright horizontal bar in the middle of a dark image: its centre of mass moves by the
    # shift, its area by the scale squared, and its second moments give its rotation.
    size, n = 64, 32
    x = torch.zeros(n, 3, size, size)
    x[:, :, 29:35, 17:47] = 1.0  # 6 x 30, centred
    out = steps("classic")[name](x, batch_generator(0, 0, 0))
    mass = out[:, 0]
    grid = torch.arange(size, dtype=torch.float32)
    total = mass.sum((1, 2))
    cy = (mass.sum(2) * grid).sum(1) / total
    cx = (mass.sum(1) * grid).sum(1) / total
    centre = (size - 1) / 2
    assert ((cx - centre).abs() <= shift * size + 0.6).all()
    assert ((cy - centre).abs() <= shift * size + 0.6).all()
    area = total / 180
    assert (area >= scales[0] ** 2 - 0.05).all() and (area <= scales[1] ** 2 + 0.05).all()
    dy, dx = grid.view(1, -1, 1) - cy.view(-1, 1, 1), grid.view(1, 1, -1) - cx.view(-1, 1, 1)
    mxy, mxx, myy = ((mass * m).sum((1, 2)) for m in (dx * dy, dx * dx, dy * dy))
    angles = torch.rad2deg(0.5 * torch.atan2(2 * mxy, mxx - myy))
    assert (angles.abs() <= degrees + 1.0).all()
    assert angles.abs().max() > degrees / 2  # drawn over the range, not all near zero
    assert len({round(a, 3) for a in angles.tolist()}) == n  # one angle per image


def test_trivialaugment_gives_each_image_one_operation_run_once_per_batch():
    calls = []

    def tagger(k):
        def op(images, generator):
            calls.append(k)
            return images + k

        return op

    choose = OneOfPerImage([(f"op{k}", tagger(k)) for k in range(4)])
    out = choose(torch.zeros(64, 3, 2, 2), batch_generator(0, 0, 0))
    per_image = out[:, 0, 0, 0]
    assert torch.equal(out, per_image.view(-1, 1, 1, 1).expand_as(out))  # one op per image
    assert set(per_image.tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert sorted(calls) == [0, 1, 2, 3]  # each operation ran once, on its images


def test_trivialaugment_list_is_torchvisions_wide_list():
    names = [name for name, _ in make_batch_augment("trivialaugment").steps[1].op.ops]
    assert names == [
        "identity",
        "shear x",
        "shear y",
        "translate x",
        "translate y",
        "rotate",
        "brightness",
        "color",
        "contrast",
        "sharpness",
        "posterize",
        "solarize",
        "autocontrast",
        "equalize",
    ]
    brightness = steps("trivialaugment")["brightness"]
    x = torch.full((16, 3, 8, 8), 0.5)
    factors = brightness(x, batch_generator(0, 0, 0))[:, 0, 0, 0] / 0.5
    # multiplicative, as torchvision's (kornia's RandomBrightness would add)
    assert ((factors >= 0.01) & (factors <= 1.99)).all() and factors.std() > 0.2
    assert math.isclose(
        float(
            steps("trivialaugment")["solarize"](
                torch.full((1, 3, 2, 2), 0.999), batch_generator(1, 0, 0)
            ).max()
        ),
        0.001,
        abs_tol=1e-3,
    )


# -- batches drawn on the device -----------------------------------------------------------
def test_device_batches_follow_the_sampler_and_its_epochs():
    n, batch = 23, 4
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    sampler = EpochShuffleSampler(n, seed=3)
    batches = DeviceBatches(images, torch.arange(n), sampler, batch)
    expected = list(sampler)
    got = [b for _, labels in batches for b in labels.tolist()]
    assert got == expected and len(batches) == math.ceil(n / batch) == 6
    for images_b, labels_b in batches:
        assert torch.equal(images_b[:, 0, 0, 0].long(), labels_b)
        assert images_b.shape[1:] == (3, 2, 2) and images_b.dtype == torch.uint8
    sampler.set_epoch(1)  # what Lightning calls through .sampler
    assert [b for _, labels in batches for b in labels.tolist()] != got


def test_device_batches_shard_like_the_sampler_for_each_process():
    n, batch = 25, 4
    shards = []
    for rank in range(2):
        sampler = EpochShuffleSampler(n, seed=1, rank=rank, world_size=2)
        batches = DeviceBatches(
            torch.zeros(n, 3, 1, 1, dtype=torch.uint8), torch.arange(n), sampler, batch
        )
        shards.append([b for _, labels in batches for b in labels.tolist()])
        assert shards[-1] == list(sampler)
    assert len(shards[0]) == len(shards[1]) == 12 and not set(shards[0]) & set(shards[1])
    val = [
        [
            b
            for _, labels in DeviceBatches(
                torch.zeros(n, 3, 1, 1, dtype=torch.uint8),
                torch.arange(n),
                ShardSampler(n, r, 2),
                batch,
            )
            for b in labels.tolist()
        ]
        for r in range(2)
    ]
    assert sorted(val[0] + val[1]) == list(range(n))  # validation: every image once


def test_a_lone_last_batch_is_dropped_only_when_asked():
    images, labels = torch.zeros(9, 3, 1, 1, dtype=torch.uint8), torch.arange(9)
    sampler = EpochShuffleSampler(9, seed=0)
    assert [len(b[1]) for b in DeviceBatches(images, labels, sampler, 4, drop_lone_last=True)] == [
        4,
        4,
    ]
    assert [len(b[1]) for b in DeviceBatches(images, labels, sampler, 4)] == [4, 4, 1]


def test_images_reach_the_device_as_channels_first_rows_of_the_cache():
    pixels = np.random.default_rng(0).integers(0, 256, (10, 5, 6, 3), dtype=np.uint8)
    rows = LazyRows(pixels, np.array([9, 2, 4, 0, 7]))
    on_device = images_to_device(rows, torch.device("cpu"), chunk=2)
    assert on_device.shape == (5, 3, 5, 6) and on_device.dtype == torch.uint8
    assert torch.equal(on_device, torch.from_numpy(pixels[[9, 2, 4, 0, 7]]).permute(0, 3, 1, 2))


def test_on_device_auto_means_cuda():
    assert resolve_on_device("auto", torch.device("cuda", 0))
    assert not resolve_on_device("auto", torch.device("cpu"))
    assert resolve_on_device(True, torch.device("cpu")) and not resolve_on_device(
        False, torch.device("cuda")
    )
