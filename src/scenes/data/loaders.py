"""Datasets and loaders over decoded images, reproducible per (seed, epoch, index).

Shuffling and augmentation are pure functions of (seed, epoch, sample index): a run resumed
from a checkpoint, or run with a different number of workers, sees exactly the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import Config
from .cache import decode_images
from .discover import DataError, LabelledFiles, Layout, find_layout, list_labelled_files
from .exclude import apply_exclusion
from .split import split_train_val
from .transforms import train_transform


class DecodedDataset(Dataset):
    """(uint8 CHW tensor, label) from an (N, H, W, 3) uint8 array, optionally augmented."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, transform=None, seed: int = 0):
        self.pixels = pixels
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        image = torch.from_numpy(np.ascontiguousarray(self.pixels[index].transpose(2, 0, 1)))
        if self.transform is not None:
            # A private RNG stream per (seed, epoch, index), so augmentation does not depend
            # on worker count or on where a resumed run picked up.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF)
                image = self.transform(image)
        return image, int(self.labels[index])


class EpochShuffleSampler(Sampler):
    """Random order seeded by (seed, epoch); Lightning calls ``set_epoch`` every epoch."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        for index in torch.randperm(self.n, generator=generator).tolist():
            yield index, self.epoch


@dataclass
class PreparedData:
    """Everything training needs to know about the data, decided before any epoch runs."""

    class_names: list[str]
    train: DecodedDataset
    val: DecodedDataset
    train_paths: list[Path]
    val_paths: list[Path]
    layout_name: str
    skipped: dict[str, str] = field(default_factory=dict)
    excluded: list[tuple[Path, int]] = field(default_factory=list)  # (path, label), data.exclude

    def class_counts(self) -> dict[str, dict[str, int]]:
        counts = {}
        for split, ds in (("train", self.train), ("val", self.val)):
            bins = np.bincount(ds.labels, minlength=len(self.class_names))
            counts[split] = {name: int(n) for name, n in zip(self.class_names, bins)}
        return counts


def resolve_workers(num_workers: int | str) -> int:
    if num_workers == "auto":
        # On CPU, workers compete with the model for the same cores; the cache makes
        # loading cheap enough to do inline. With a GPU, augmentation must keep up.
        return min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
    return int(num_workers)


def training_files(cfg: Config) -> tuple[Layout, LabelledFiles]:
    """The labelled files of the training folder. The test folder is never listed."""
    layout = find_layout(cfg.resolved_data_dir())
    return layout, list_labelled_files(layout.train_dir)


def prepare_data(
    cfg: Config,
    layout: Layout,
    files: LabelledFiles,
    interpolation: str = "bilinear",
    progress: bool = True,
) -> PreparedData:
    """Decode (cached), drop unreadable files, split train/val, drop ``data.exclude``'s files."""
    decoded = decode_images(
        files.paths, cfg.data.image_size, cfg.resolved_cache_dir(), interpolation, progress=progress
    )
    if len(decoded.kept) == 0:
        raise DataError(f"no readable images in {layout.train_dir}")
    labels = np.asarray(files.labels)[decoded.kept]
    paths = [files.paths[i] for i in decoded.kept]
    missing = sorted(set(range(len(files.class_names))) - set(labels.tolist()))
    if missing:
        names = ", ".join(files.class_names[i] for i in missing)
        raise DataError(f"every image of class(es) {names} in {layout.train_dir} is unreadable")
    train_idx, val_idx = split_train_val(
        labels, cfg.data.val_fraction, cfg.seed, groups=decoded.digests
    )
    excluded_idx = np.empty(0, dtype=np.int64)
    if cfg.data.exclude:
        train_idx, val_idx, excluded_idx = apply_exclusion(
            cfg.data.exclude, layout.train_dir, paths, labels, files.class_names, train_idx, val_idx
        )
    augment = train_transform(cfg.augment.preset, cfg.augment.p)
    # Index the memory map lazily through a view: no copy of the pixel array is made.
    train_ds = DecodedDataset(
        _Subset(decoded.pixels, train_idx), labels[train_idx], augment, cfg.seed
    )
    val_ds = DecodedDataset(_Subset(decoded.pixels, val_idx), labels[val_idx])
    return PreparedData(
        class_names=files.class_names,
        train=train_ds,
        val=val_ds,
        train_paths=[paths[i] for i in train_idx],
        val_paths=[paths[i] for i in val_idx],
        layout_name=layout.name,
        skipped=decoded.failed,
        excluded=[(paths[i], int(labels[i])) for i in excluded_idx],
    )


class _Subset:
    """Rows ``indices`` of an array, read on access (keeps memory maps lazy)."""

    def __init__(self, array: np.ndarray, indices: np.ndarray):
        self.array = array
        self.indices = np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[self.indices[i]]


def make_loaders(data: PreparedData, cfg: Config) -> tuple[DataLoader, DataLoader]:
    workers = resolve_workers(cfg.data.num_workers)
    common = dict(
        batch_size=cfg.data.batch_size,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )
    # A last batch of one image breaks BatchNorm (one value per channel); drop only that case.
    lone_last = len(data.train) % cfg.data.batch_size == 1 and len(data.train) > 1
    train = DataLoader(
        data.train,
        sampler=EpochShuffleSampler(len(data.train), cfg.seed),
        drop_last=lone_last,
        **common,
    )
    val = DataLoader(data.val, shuffle=False, **common)
    return train, val
