"""The Lightning Trainer of a run: checkpoints, early stopping, the epoch table, EMA."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from .. import console
from ..config import Config
from ..rundir import RunDir, metrics_columns, monitor_mode
from .callbacks import EpochProgressBar, EpochTable, ReseedEachStep, RunCheckpoint, WeightEMA
from .hardware import Hardware, process_rank
from .loggers import make_loggers


def make_trainer(
    cfg: Config, hardware: Hardware, run_dir: Path, extra_callbacks: list[L.Callback] | None
) -> tuple[L.Trainer, tuple[RunCheckpoint, RunCheckpoint]]:
    """The Trainer, and its (best, last) checkpoint callbacks."""
    tc = cfg.train
    checkpoints, last_checkpoint = run_checkpoints(tc.monitor, RunDir(run_dir).checkpoints)
    global_batch = cfg.data.batch_size * hardware.world_size * tc.accumulate_grad_batches
    preamble = (
        f"global batch {global_batch} = {cfg.data.batch_size} per device x "
        f"{hardware.world_size} process(es) x {tc.accumulate_grad_batches} accumulated"
    )
    # A bar only on a terminal: in a log file its redraws would be glued to the epoch table.
    bar = tc.progress_bar and console.bars_enabled()
    loggers = make_loggers(cfg, run_dir, hardware_first(hardware))
    callbacks = [
        *([EpochProgressBar()] if bar else []),
        ReseedEachStep(cfg.seed),
        EpochTable(RunDir(run_dir), preamble=preamble, columns=metrics_columns(cfg.task)),
        checkpoints,
        last_checkpoint,
        EarlyStopping(monitor=tc.monitor, mode=monitor_mode(tc.monitor), patience=tc.patience),
        *([WeightEMA(tc.ema_decay, ema_start_epoch(tc))] if tc.ema_decay else []),
        *(extra_callbacks or []),
    ]
    trainer = L.Trainer(
        max_epochs=tc.epochs,
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        num_nodes=hardware.num_nodes,
        strategy=hardware.strategy,
        precision=hardware.precision,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        # Our samplers shard the data themselves: Lightning's DistributedSampler would pad
        # the validation shards with repeated images and count them twice.
        use_distributed_sampler=False,
        deterministic=tc.deterministic,
        gradient_clip_val=tc.grad_clip,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        enable_progress_bar=bar,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    return trainer, (checkpoints, last_checkpoint)


def run_checkpoints(monitor: str, checkpoint_dir: Path) -> tuple[RunCheckpoint, RunCheckpoint]:
    """``best.ckpt`` (by ``monitor``) and ``last.ckpt`` (every epoch)."""
    best = RunCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor=monitor,
        mode=monitor_mode(monitor),
        save_top_k=1,
        enable_version_counter=False,
    )
    # Lightning's save_last only refreshes last.ckpt when a new best is saved; resuming needs
    # the latest epoch whatever its score, so "last" is a checkpoint of its own, every epoch.
    last = RunCheckpoint(
        dirpath=checkpoint_dir,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    return best, last


def hardware_first(hardware: Hardware) -> bool:
    return process_rank(hardware.devices_per_node) == 0


def ema_start_epoch(tc) -> int:
    """Averaging starts with the full phase: in fine_tune mode, after the head epochs."""
    return tc.head_epochs if tc.mode == "fine_tune" else 0
