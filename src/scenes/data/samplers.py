"""What a DataLoader reads: decoded images as tensors, and samplers whose order is a pure
function of (seed, epoch) and whose shards are disjoint across DDP processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class LazyRows:
    """Rows ``indices`` of an array, read on access (keeps memory maps lazy)."""

    def __init__(self, array: np.ndarray, indices: np.ndarray):
        self.array = array
        self.indices = np.asarray(indices)

    def __getstate__(self) -> dict:
        # A memory map travels to another process (ddp_spawn, DataLoader workers started
        # with spawn) as its file name, not as a copy of every pixel.
        state = dict(self.__dict__)
        if isinstance(self.array, np.memmap) and self.array.filename:
            state["array"] = (str(self.array.filename), len(self.array))
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["array"], tuple):
            filename, rows = state["array"]
            state["array"] = np.load(filename, mmap_mode="r", allow_pickle=False)[:rows]
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[self.indices[i]]


class DecodedDataset(Dataset):
    """(uint8 CHW tensor, label) from an (N, H, W, 3) uint8 array. Augmentation happens later,
    on whole batches on the training device (``batch_augment``)."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        self.pixels = pixels
        labels = np.asarray(labels)
        # class indices (N,), or multi-hot rows (N, classes) as float targets (multi-label)
        self.labels = labels.astype(np.float32 if labels.ndim == 2 else np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.pixels[index].transpose(2, 0, 1)))
        label = self.labels[index]
        return image, torch.from_numpy(label) if label.ndim else int(label)


class WithRows(Dataset):
    """(image, label, row) of ``dataset``: each image's position travels with its batch, where
    per-image values computed before training are looked up by it (cached teacher outputs,
    ``training.distill``)."""

    def __init__(self, dataset: DecodedDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


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


class BalancedSampler(EpochShuffleSampler):
    """Each class drawn equally often per epoch (``data.sampler: balanced``): an epoch of as
    many draws as there are images, a ``1 / classes`` share of them from each class. Within a
    class the images come in a seeded random order, repeated as often as needed (a small class
    is seen several times, a large one partly), so the order is a pure function of (seed,
    epoch) like the shuffle's, and sharded across processes the same way."""

    def __init__(self, labels: np.ndarray, seed: int, rank: int = 0, world_size: int = 1):
        super().__init__(len(labels), seed, rank, world_size)
        labels = np.asarray(labels)
        self.members = [np.flatnonzero(labels == c) for c in np.unique(labels)]

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        per_class = -(-self.n // len(self.members))  # ceil: every class gets the same count
        draws = []
        for members in self.members:
            repeats = -(-per_class // len(members))
            order = torch.cat(
                [torch.randperm(len(members), generator=generator) for _ in range(repeats)]
            )
            draws.append(torch.from_numpy(members)[order[:per_class]])
        mixed = torch.cat(draws)[torch.randperm(per_class * len(self.members), generator=generator)]
        mixed = mixed[: len(self) * self.world_size]
        return iter(mixed[self.rank :: self.world_size].tolist())


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
