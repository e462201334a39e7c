"""What a run starts from, before the Trainer: the run folder, the data, the model and the
bundle's metadata (``set_up_run``); shared by ``train`` and the finders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from .. import atomic, console
from ..config import Config
from ..data.loaders import PreparedData, prepare_data, training_files
from ..data.multilabel import class_totals, label_text
from ..errors import ConfigError, DataError, UsageError
from ..models.base import BuiltModel
from ..models.meta import BundleMeta
from ..models.registry import build_model
from ..rundir import RunDir, SplitRow, epoch_of, read_checkpoint
from .distill import make_distiller
from .figures import write_data_figures
from .hardware import Hardware, process_rank, resolve_hardware
from .imbalance import imbalance_notice
from .init_run import (
    InitRun,
    build_from_init,
    continued_files,
    read_init,
    recorded_config,
    write_rehearsal,
)
from .loggers import check_loggers
from .module import SceneClassifier
from .resume import check_same_files, check_same_recipe, checkpoint_to_resume
from .run_folder import new_run_dir, resume_run_dir

log = logging.getLogger(__name__)


@dataclass
class RunSetup:
    """What training starts from: the run folder, the data, the model and its bundle meta."""

    run: RunDir
    hardware: Hardware
    data: PreparedData
    module: SceneClassifier
    meta: BundleMeta
    resume: Path | None


def set_up_run(cfg: Config, resume: str | Path | None) -> RunSetup:
    """Everything before the Trainer: an impossible setup is refused before any work, the
    data decoded, the run folder's files written (first process), the module built."""
    console.quiet_lightning()
    hardware = resolve_hardware(cfg.train)  # refuse an impossible setup before any work
    check_loggers(cfg)
    rank = process_rank(hardware.devices_per_node)
    first = rank == 0
    init = read_init(cfg)  # the run model.init names, checked before any work
    if init is not None:
        cfg = recorded_config(cfg, init)
    resume_meta = saved_split = None
    if resume is not None:
        resume = checkpoint_to_resume(resume)
        run_dir = resume_run_dir(cfg, resume)
        resume_meta = _checkpoint_meta(resume)
        check_same_world_size(resume_meta, hardware)
        saved_split = _checked_split(RunDir(run_dir), cfg)
    else:
        run_dir = new_run_dir(cfg, rank, hardware.world_size)
    run = RunDir(run_dir)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    layout, files = training_files(cfg)
    continued = None
    if init is not None:
        continued = continued_files(files, init, cfg.train.rehearsal, cfg.data.split_seed)
        files = continued.files
    built = build_for_run(cfg, files.class_names, resume_meta, init)
    if first:
        log.info(
            "data: %s (%s layout): %d images, %d classes",
            layout.train_dir.resolve(),
            layout.name,
            len(files.paths),
            len(files.class_names),
        )
        log.info("weights: %s", describe_weights(built, resume))
        log.info("device: %s", hardware.describe())
    # Decoded as the bundle will tell every serving path to decode (BundleMeta.preprocess).
    student = bundle_meta(built, cfg, files.class_names)
    preprocess = student.preprocess
    # The teachers are checked against the data's classes before any image is decoded.
    distiller = make_distiller(cfg, files.class_names, student)
    if first and distiller is not None:
        log.info(
            "teacher: %s (alpha %g, temperature %g, outputs %s)",
            " + ".join(distiller.names),
            cfg.train.distill_alpha,
            cfg.train.distill_temperature,
            cfg.train.teacher_outputs,
        )
    empty = continued.empty_classes if continued else []
    if first and empty:
        log.warning(
            "warning: the new data has no image of %s, classes of the run it starts from: "
            "they keep their head rows but are not trained (train.rehearsal=N keeps N of "
            "the run's images of each)",
            ", ".join(empty),
        )
    data = prepare_data(
        cfg, layout, files, preprocess, cfg.train.progress_bar and first, saved_split, empty
    )
    check_shards(data, hardware.world_size)
    if first:
        write_run_files(run_dir, cfg, data, resume_meta)
        if continued is not None and continued.rehearsed:
            write_rehearsal(run_dir, continued.rehearsed, init.run_dir)

    counts = class_totals(data.train.labels, len(data.class_names))
    notice = imbalance_notice(counts, data.class_names, cfg, untrained=empty)
    if first and notice:
        log.warning("warning: %s", notice)
    module = SceneClassifier(built, cfg, data.class_names, counts, distiller)
    meta = bundle_meta(built, cfg, data.class_names)
    return RunSetup(run, hardware, data, module, meta, resume)


def _checked_split(run: RunDir, cfg: Config) -> list[SplitRow]:
    """A resumed run's split.csv rows, once it is checked that the resume computes the same
    recipe on the same files (before any image is decoded). A resumed run trains and
    validates on the images it started with, listed in split.csv."""
    check_same_recipe(run, cfg)
    saved_split = run.read_split()
    check_same_files(saved_split, run.split_csv)
    return saved_split


def _checkpoint_meta(path: Path) -> dict:
    ckpt = read_checkpoint(path, mmap=True)  # data only: a shared run folder cannot run code
    if "scenes" not in ckpt:
        raise UsageError(f"{path} is not a scenes training checkpoint")
    return {"epoch": ckpt["epoch"], **ckpt["scenes"]}


def _split_rows(data: PreparedData) -> list[SplitRow]:
    """Which file went where, so evaluation on the validation split can be reproduced."""
    return [
        SplitRow(
            path,
            label_text(label, data.class_names),
            split,
            given_label=data.given_labels.get(path),
        )
        for split, paths, ds in (
            ("train", data.train_paths, data.train),
            ("val", data.val_paths, data.val),
        )
        for path, label in zip(paths, ds.labels)
    ] + [SplitRow(path, label, "excluded") for path, label in data.excluded]


def build_for_run(
    cfg: Config, class_names: list[str], resume_meta: dict | None, init: InitRun | None = None
) -> BuiltModel:
    if resume_meta is None and init is not None:
        return build_from_init(cfg, class_names, init)
    if resume_meta is None:
        return build_model(
            cfg.model.name,
            len(class_names),
            pretrained=cfg.model.pretrained,
            weights=cfg.model.weights,
            weights_file=cfg.model.weights_file,
            weights_dir=cfg.model.weights_dir,
            image_size=cfg.data.image_size,
            class_names=class_names,
        )
    if resume_meta["class_names"] != class_names:
        raise DataError(
            f"the checkpoint was trained on classes {resume_meta['class_names']}, "
            f"the data has {class_names}; resume with the same data"
        )
    # The checkpoint holds the weights: no need (nor network) to fetch pretrained ones.
    built = build_model(
        cfg.model.name,
        len(class_names),
        pretrained=False,
        image_size=cfg.data.image_size,
        class_names=class_names,
        backend_config=resume_meta.get("backend_config"),
    )
    built.mean, built.std = resume_meta["mean"], resume_meta["std"]
    built.interpolation, built.weights = resume_meta["interpolation"], resume_meta["weights"]
    return built


def check_shards(data: PreparedData, world_size: int) -> None:
    """Every process needs images of both splits: one with none would wait forever for the
    others at the first synchronisation."""
    for split, dataset in (("training", data.train), ("validation", data.val)):
        if len(dataset) < world_size:
            raise DataError(
                f"{console.plural(len(dataset), split + ' image')} for {world_size} processes: "
                "each process "
                "needs at least one; use fewer --devices or more data (data.val_fraction "
                "sets the validation share)"
            )


def describe_weights(built: BuiltModel, resume: Path | None) -> str:
    if resume is not None:
        return f"from the checkpoint {resume}"
    return built.weights or "none: random initialisation (--no-pretrained)"


def check_same_world_size(resume_meta: dict, hardware: Hardware) -> None:
    """Exact resume needs the same process count: each process's shard of the data depends on
    it. A different count is refused rather than resumed inexactly."""
    saved = resume_meta.get("world_size", 1)
    if saved != hardware.world_size:
        raise ConfigError(
            f"the checkpoint was trained by {saved} process(es) (train.devices x "
            f"train.num_nodes) and this resume would run {hardware.world_size}: resume with the "
            "same devices and nodes (each process's share of the data depends on the count)"
        )


def write_run_files(
    run_dir: Path, cfg: Config, data: PreparedData, resume_meta: dict | None
) -> None:
    """What the first process writes before training: config, split, data figures."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(run_dir)
    run.figures.mkdir(exist_ok=True)
    atomic.write_text(run.config, cfg.to_yaml())
    run.write_split(_split_rows(data))
    write_data_figures(run.figures, data, cfg.augment.preset, cfg.seed)
    if resume_meta is not None:
        run.trim_metrics(epoch_of(resume_meta))


def bundle_meta(built: BuiltModel, cfg: Config, class_names: list[str]) -> BundleMeta:
    meta = BundleMeta.of(
        built, class_names, cfg.data.image_size, cfg.model.channels_last, cfg.data.resize
    )
    meta.task = cfg.task
    meta.training = {
        "class_weights": cfg.train.class_weights,
        "sampler": cfg.data.sampler,
        "resize": cfg.data.resize,
        "mode": cfg.train.mode,
        "epochs": cfg.train.epochs,
    }
    if cfg.model.init:
        meta.training.update({"init": cfg.model.init, "init_sha256": cfg.model.init_sha256})
        meta.training["rehearsal"] = cfg.train.rehearsal
    if cfg.train.teacher:
        meta.training.update(
            {
                "teacher": " + ".join(cfg.train.teacher),
                "distill_alpha": cfg.train.distill_alpha,
                "distill_temperature": cfg.train.distill_temperature,
                "teacher_outputs": cfg.train.teacher_outputs,
            }
        )
    return meta
