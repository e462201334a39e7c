"""``train(cfg)``: data -> model -> Lightning Trainer -> run directory with a model bundle."""

from __future__ import annotations

import csv
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from ..config import Config
from ..data.loaders import PreparedData, make_loaders, prepare_data, training_files
from ..figures import write_curve_figures, write_data_figures
from ..models.bundle import BundleMeta, save_bundle
from ..models.registry import BuiltModel, build_model
from .callbacks import EpochTable, ReseedEachStep
from .module import SceneClassifier

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_epoch: int
    best: dict[str, float]  # metrics of the best epoch (validation split)
    epochs_run: int
    wall_time_s: float


class RunDirError(ValueError):
    """The run directory would overwrite another run."""


def default_run_dir(cfg: Config) -> Path:
    name = cfg.model.name.replace(":", "-").replace("/", "-")
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    # bf16 autocast is slower than fp32 on CPUs without AMX (measured: resnet18 23 -> 10 img/s).
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def _checkpoint_meta(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "scenes" not in ckpt:
        raise ValueError(f"{path} is not a scenes training checkpoint")
    return {"epoch": ckpt["epoch"], **ckpt["scenes"]}


def _trim_metrics(csv_path: Path, last_epoch: int) -> None:
    """Drop rows a crashed run wrote after its last checkpoint; the resumed run redoes them."""
    if not csv_path.exists():
        return
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    kept = [r for r in rows if int(r["epoch"]) <= last_epoch]
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)


def _write_split(run_dir: Path, data: PreparedData) -> None:
    """Which file went where, so evaluation on the validation split can be reproduced."""
    with (run_dir / "split.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for split, paths, ds in (
            ("train", data.train_paths, data.train),
            ("val", data.val_paths, data.val),
        ):
            for path, label in zip(paths, ds.labels):
                writer.writerow([str(path), data.class_names[label], split])
        for path, label in data.excluded:
            writer.writerow([str(path), data.class_names[label], "excluded"])


def build_for_run(cfg: Config, class_names: list[str], resume_meta: dict | None) -> BuiltModel:
    if resume_meta is None:
        return build_model(
            cfg.model.name,
            len(class_names),
            pretrained=cfg.model.pretrained,
            weights=cfg.model.weights,
            weights_file=cfg.model.weights_file,
            image_size=cfg.data.image_size,
            class_names=class_names,
        )
    if resume_meta["class_names"] != class_names:
        raise ValueError(
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


def train(
    cfg: Config,
    resume: str | Path | None = None,
    extra_callbacks: list[L.Callback] | None = None,
) -> TrainResult:
    """Train as ``cfg`` says; with ``resume``, continue that run exactly where it stopped."""
    started = time.perf_counter()
    resume_meta = None
    if resume is not None:
        resume = Path(resume)
        if not resume.is_file():
            raise FileNotFoundError(f"checkpoint to resume not found: {resume}")
        resume_meta = _checkpoint_meta(resume)
        run_dir = Path(cfg.out) if cfg.out else resume.resolve().parent.parent
    else:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        if (run_dir / "metrics.csv").exists() or (run_dir / "checkpoints").exists():
            raise RunDirError(
                f"{run_dir} already holds a run; choose another --out, or continue it with "
                f"--resume {run_dir / 'checkpoints' / 'last.ckpt'}"
            )

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    layout, files = training_files(cfg)
    built = build_for_run(cfg, files.class_names, resume_meta)
    data = prepare_data(cfg, layout, files, built.interpolation, progress=cfg.train.progress_bar)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    _write_split(run_dir, data)
    write_data_figures(run_dir / "figures", data, cfg.augment.preset, cfg.seed)
    if resume_meta is not None:
        _trim_metrics(run_dir / "metrics.csv", resume_meta["epoch"] + 1)

    module = SceneClassifier(built, cfg, data.class_names)
    train_loader, val_loader = make_loaders(data, cfg)
    tc = cfg.train
    mode = "min" if tc.monitor == "val_loss" else "max"
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=tc.monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,
    )
    # Lightning's save_last only refreshes last.ckpt when a new best is saved; resuming needs
    # the latest epoch whatever its score, so "last" is a checkpoint of its own, every epoch.
    last_checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    callbacks = [
        ReseedEachStep(cfg.seed),
        EpochTable(run_dir / "metrics.csv"),
        checkpoints,
        last_checkpoint,
        EarlyStopping(monitor=tc.monitor, mode=mode, patience=tc.patience),
        LearningRateMonitor(logging_interval="epoch"),
        *(extra_callbacks or []),
    ]
    trainer = L.Trainer(
        max_epochs=tc.epochs,
        accelerator=tc.accelerator,
        devices=1,
        precision=resolve_precision(tc.precision),
        deterministic=tc.deterministic,
        gradient_clip_val=tc.grad_clip,
        callbacks=callbacks,
        logger=TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        enable_progress_bar=tc.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(10, len(train_loader))),
    )
    with warnings.catch_warnings():
        # We choose workers on purpose (0 on CPU: the decoded cache makes loading cheap),
        # and a frozen backbone keeps its BatchNorm layers in eval mode on purpose.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)

    best_path = Path(checkpoints.best_model_path or last_checkpoint.best_model_path)
    best_state = torch.load(best_path, map_location="cpu", weights_only=False)
    module.load_state_dict(best_state["state_dict"])
    meta = BundleMeta(
        backend=built.backend,
        architecture=built.architecture,
        class_names=data.class_names,
        image_size=cfg.data.image_size,
        mean=list(built.mean),
        std=list(built.std),
        interpolation=built.interpolation,
        head=built.head,
        channels_last=cfg.model.channels_last,
        backend_config=built.backend_config,
    )
    save_bundle(module.model, meta, run_dir / "model")
    write_curve_figures(run_dir / "figures", run_dir / "metrics.csv")
    best_epoch = int(best_state["epoch"]) + 1
    best = _row_for_epoch(run_dir / "metrics.csv", best_epoch)
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=best_path,
        best_epoch=best_epoch,
        best=best,
        epochs_run=trainer.current_epoch,
        wall_time_s=time.perf_counter() - started,
    )


def _row_for_epoch(csv_path: Path, epoch: int) -> dict[str, float]:
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["epoch"]) == epoch:
                return {k: float(v) for k, v in row.items()}
    return {}
