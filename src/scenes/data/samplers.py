"""What a DataLoader reads: decoded images as tensors, and samplers whose order is a pure
function of (seed, epoch) and whose shards are disjoint across DDP processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class DecodedDataset(Dataset):
    """(uint8 CHW tensor, label) from an (N, H, W, 3) uint8 array. Augmentation happens later,
    on whole batches on the training device (``batch_augment``)."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        self.pixels = pixels
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.ascontiguousarray(self.pixels[index].transpose(2, 0, 1)))
        return image, int(self.labels[index])


class EpochShuffleSampler(Sampler):
    """This process's share of a random order seeded by (seed, epoch); Lightning calls
    ``set_epoch`` every epoch.

    With several processes (DDP) each takes every ``world_size``-th index of the same
    permutation, so the shards are disjoint, and all get the same count (the permutation's
    last ``n % world_size`` indices sit out that epoch): DDP processes must run the same
    number of steps. One process sees the whole permutation.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.n = n
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.world_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator)[: len(self) * self.world_size]
        return iter(order[self.rank :: self.world_size].tolist())


class ShardSampler(Sampler):
    """Every ``world_size``-th index from ``rank``, in order, nothing repeated or padded:
    validation metrics summed over the processes count each image exactly once (a
    DistributedSampler pads the last shard with repeats, which would count some twice)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
