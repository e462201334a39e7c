"""Datasets and loaders over decoded images, reproducible per (seed, epoch).

The order of each epoch is a pure function of (seed, epoch) and augmentation one of (seed,
epoch, batch, rank) (``batch_augment``, on the device): a run resumed from a checkpoint, run
with another number of workers, or with its images on the device, sees exactly the same
batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..choices import worker_count
from ..config import Config
from ..errors import DataError
from ..rundir import SplitRow
from .cache import decode_images
from .device_loader import DeviceBatches, images_to_device, resolve_on_device
from .discover import LabelledFiles, Layout, find_layout, list_labelled_files
from .images import Preprocess
from .multilabel import class_totals, label_text, read_labels_csv
from .relabel import relabel_rows
from .samplers import (
    BalancedSampler,
    DecodedDataset,
    EpochShuffleSampler,
    LazyRows,
    ShardSampler,
    WithRows,
)
from .split_sides import split_rows


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
    excluded: list[tuple[Path, str]] = field(default_factory=list)  # (path, label) left out
    given_labels: dict[Path, str] = field(default_factory=dict)  # the folder's, before relabel

    def class_counts(self) -> dict[str, dict[str, int]]:
        counts = {}
        for split, ds in (("train", self.train), ("val", self.val)):
            bins = class_totals(ds.labels, len(self.class_names))
            counts[split] = {name: int(n) for name, n in zip(self.class_names, bins)}
        return counts


def resolve_workers(num_workers: int | str) -> int:
    if num_workers == "auto":
        # On CPU, workers compete with the model for the same cores; the cache makes
        # loading cheap enough to do inline. With a GPU, augmentation must keep up.
        return worker_count() if torch.cuda.is_available() else 0
    return int(num_workers)


def training_files(cfg: Config) -> tuple[Layout, LabelledFiles]:
    """The labelled files of the training folder. The test folder is never listed."""
    if cfg.data.labels:
        csv_path = labels_file(cfg)
        folder = csv_path.parent
        return Layout(folder, folder, None, "labels csv", {"train": folder}), read_labels_csv(
            csv_path, cfg.data.classes
        )
    layout = find_layout(cfg.resolved_data_dir())
    files = list_labelled_files(layout.train_dir)
    # Refused before decoding anything; a run started from another (model.init) has its classes.
    if len(files.class_names) < 2 and not cfg.model.init:
        raise DataError(
            f"{layout.train_dir} has one class folder ({files.class_names[0]}): a classifier "
            "needs at least two classes, each in its own folder <class>/<images>"
        )
    return layout, files


def labels_file(cfg: Config) -> Path:
    """data.labels: as given, else under the data folder (``--data``)."""
    given = Path(cfg.data.labels)
    if given.is_absolute() or given.exists():
        return given
    return cfg.resolved_data_dir() / given


def prepare_data(
    cfg: Config,
    layout: Layout,
    files: LabelledFiles,
    preprocess: Preprocess | None = None,
    progress: bool = True,
    saved_split: list[SplitRow] | None = None,
    empty_classes: list[str] = (),
) -> PreparedData:
    """Decode (cached), drop unreadable files, split train/val, drop ``data.exclude``'s files.
    ``saved_split`` (a resumed run's split.csv) is reused as it is instead of splitting again.
    ``empty_classes`` may have no image (a run's classes that a run started from it lacks)."""
    preprocess = preprocess or Preprocess(cfg.data.image_size, resize=cfg.data.resize)
    decoded = decode_images(files.paths, preprocess, cfg.resolved_cache_dir(), progress=progress)
    if len(decoded.kept) == 0:
        raise DataError(f"no readable images in {layout.train_dir}")
    labels = np.asarray(files.labels)[decoded.kept]
    paths = [files.paths[i] for i in decoded.kept]
    check_every_class_readable(labels, files.class_names, layout.train_dir, empty_classes)
    train_idx, val_idx, excluded_idx = split_rows(
        cfg, layout.train_dir, paths, labels, files.class_names, decoded.digests, saved_split
    )
    given = labels
    if cfg.data.relabel:  # after the split, as data.exclude: the same validation images
        labels, train_idx, val_idx, excluded_idx = relabel_rows(
            cfg.data.relabel, layout.train_dir, paths, labels, files.class_names,
            train_idx, val_idx, excluded_idx,
        )  # fmt: skip
    if len(val_idx) == 0:
        raise DataError(
            f"no validation images are left in {layout.train_dir}: the split, less exact "
            "duplicates of training images and data.exclude's files, is empty; raise "
            "data.val_fraction or exclude fewer images"
        )
    # Index the memory map lazily through a view: no copy of the pixel array is made.
    train_ds = DecodedDataset(LazyRows(decoded.pixels, train_idx), labels[train_idx])
    val_ds = DecodedDataset(LazyRows(decoded.pixels, val_idx), labels[val_idx])
    return PreparedData(
        class_names=files.class_names,
        train=train_ds,
        val=val_ds,
        train_paths=[paths[i] for i in train_idx],
        val_paths=[paths[i] for i in val_idx],
        layout_name=layout.name,
        skipped=decoded.failed,
        excluded=[(paths[i], label_text(given[i], files.class_names)) for i in excluded_idx],
        given_labels={paths[i]: label_text(given[i], files.class_names) for i in range(len(paths))},
    )


def check_every_class_readable(
    labels: np.ndarray, class_names: list[str], where: Path, may_be_empty: list[str] = ()
) -> None:
    totals = class_totals(labels, len(class_names))
    missing = [n for n, t in zip(class_names, totals) if t == 0 and n not in may_be_empty]
    if missing:
        raise DataError(
            f"no readable image of class(es) {', '.join(missing)} in {where}: a "
            "class needs images to be learnt"
        )


Loader = DataLoader | DeviceBatches


def make_loaders(
    data: PreparedData,
    cfg: Config,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | None = None,
) -> tuple[Loader, Loader]:
    """This process's training and validation loaders (``rank`` of ``world_size``): batches
    drawn on ``device`` when ``data.on_device`` says so, else DataLoaders over the cache.
    Training batches carry their images' rows in ``data.train`` when the teachers' answers are
    cached per image (``train.teacher_outputs``)."""
    device = device or torch.device("cpu")
    train_sampler = (
        BalancedSampler(data.train.labels, cfg.seed, rank, world_size)
        if cfg.data.sampler == "balanced"
        else EpochShuffleSampler(len(data.train), cfg.seed, rank, world_size)
    )
    val_sampler = ShardSampler(len(data.val), rank, world_size)
    # A last batch of one image breaks BatchNorm (one value per channel); drop only that case.
    lone_last = len(train_sampler) % cfg.data.batch_size == 1 and len(train_sampler) > 1
    with_rows = bool(cfg.train.teacher) and cfg.train.teacher_outputs == "cached"
    if resolve_on_device(cfg.data.on_device, device):
        return tuple(
            DeviceBatches(
                images_to_device(ds.pixels, device),
                torch.from_numpy(ds.labels),
                sampler,
                cfg.data.batch_size,
                drop_lone_last=drop,
                with_rows=rows,
            )
            for ds, sampler, drop, rows in (
                (data.train, train_sampler, lone_last, with_rows),
                (data.val, val_sampler, False, False),
            )
        )
    workers = resolve_workers(cfg.data.num_workers)
    common = dict(
        batch_size=cfg.data.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    train_ds = WithRows(data.train) if with_rows else data.train
    train = DataLoader(train_ds, sampler=train_sampler, drop_last=lone_last, **common)
    val = DataLoader(data.val, sampler=val_sampler, **common)
    return train, val


class SceneDataModule(L.LightningDataModule):
    """Hands Lightning the loaders of this process: they are made when Lightning asks, once
    the processes exist and each knows its rank and device."""

    def __init__(self, data: PreparedData, cfg: Config):
        super().__init__()
        self.data = data
        self.cfg = cfg
        # What Lightning's batch-size finder changes (data.batch_size=auto on CUDA).
        self.batch_size = cfg.data.batch_size
        self._loaders: dict[int, tuple[Loader, Loader]] = {}

    def _made(self) -> tuple[Loader, Loader]:
        if self.batch_size not in self._loaders:
            trainer = self.trainer
            if trainer is None:
                rank, world, device = 0, 1, torch.device("cpu")
            else:
                rank, world = trainer.global_rank, trainer.world_size
                device = trainer.strategy.root_device
            data_cfg = self.cfg.data.model_copy(update={"batch_size": self.batch_size})
            cfg = self.cfg.model_copy(update={"data": data_cfg})
            self._loaders = {self.batch_size: make_loaders(self.data, cfg, rank, world, device)}
        return self._loaders[self.batch_size]

    def train_dataloader(self) -> Loader:
        return self._made()[0]

    def val_dataloader(self) -> Loader:
        return self._made()[1]
