"""Callbacks: the per-epoch table + metrics.csv, per-epoch reseeding for exact resume, and
checkpoints whose state follows their run folder."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint, TQDMProgressBar
from tqdm.auto import tqdm

from ..rundir import METRICS_COLUMNS, RunDir


def header(column: str) -> str:
    """The table's heading for a metrics.csv column: ``train_f1`` -> ``train F1``."""
    words = column.removesuffix("_s").split("_")
    return " ".join({"f1": "F1", "map": "mAP"}.get(w, w) for w in words)


class EpochTable(L.Callback):
    """Prints one table row per epoch and appends the same numbers to ``metrics.csv``, in
    the first process only (the numbers are already reduced over all processes)."""

    def __init__(
        self,
        run_dir: RunDir,
        printer=tqdm.write,
        preamble: str = "",
        columns: list[str] = METRICS_COLUMNS,
    ):
        self.run_dir = run_dir
        self.columns = columns  # metrics.csv's, by task (rundir.metrics_columns)
        self.printer = printer
        self.preamble = preamble  # printed once above the header, e.g. the global batch
        self._started = 0.0
        self._lrs: list[float] = []
        self._header_printed = False

    def on_train_start(self, trainer, pl_module) -> None:
        if self.preamble and trainer.is_global_zero:
            self.printer(self.preamble)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()
        self._lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._lrs.append(trainer.optimizers[0].param_groups[-1]["lr"])

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not pl_module.epoch_summary or not trainer.is_global_zero:
            return
        summary = pl_module.epoch_summary
        row = {
            "epoch": trainer.current_epoch + 1,
            "time_s": round(time.perf_counter() - self._started, 2),
            # Mean over the epoch's steps: per-step schedules move it within an epoch.
            "lr": float(np.mean(self._lrs)) if self._lrs else float("nan"),
            **{k: summary.get(k, float("nan")) for k in self.columns[3:]},
        }
        self.run_dir.append_metrics(row)
        # The loggers get the module's validation numbers from its log_dict; the epoch's
        # learning rate and time are this row's, so every tracker shows metrics.csv's numbers.
        for logger in trainer.loggers:
            logger.log_metrics({"lr": row["lr"], "time_s": row["time_s"]}, step=trainer.global_step)
        if not self._header_printed:
            self.printer(" ".join(f"{header(c):>10}" for c in self.columns))
            self._header_printed = True
        self.printer(
            f"{row['epoch']:>10d} {row['time_s']:>9.1f}s {row['lr']:>10.2e} "
            + " ".join(f"{row[k]:>10.4f}" for k in self.columns[3:])
        )


class EpochProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar (rate and ETA), numbered like the epoch table (from 1), without
    the logger's version number."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.set_description(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )

    def init_validation_tqdm(self):
        # Validation takes seconds; its bar would only push the epoch table around.
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class ReseedEachStep(L.Callback):
    """Seed the global RNGs from (seed, epoch, batch, rank) before every training step, so
    dropout and the like do not depend on whether a run was interrupted and resumed (Lightning
    and the DataLoader draw from the global RNG at different moments in a resumed run), and
    DDP processes do not draw the same dropout masks for their different images."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        key = (self.seed, trainer.current_epoch, batch_idx)
        if trainer.world_size > 1:  # one process keeps the seeds it always had
            key += (trainer.global_rank,)
        step_seed = hash(key) % (2**31)
        random.seed(step_seed)
        np.random.seed(step_seed)
        torch.manual_seed(step_seed)


class WeightEMA(EMAWeightAveraging):
    """An exponential moving average of the weights (Lightning's EMAWeightAveraging) that
    starts at epoch ``start_epoch`` (in fine_tune mode: when the backbone is unfrozen, so the
    average is not anchored to the head-only phase). Validation, checkpoints and hence the
    model bundle use the averaged weights once averaging has started; before that, the
    weights being trained, so the first epochs' numbers are real ones too."""

    def __init__(self, decay: float, start_epoch: int = 0):
        super().__init__(decay=decay, use_buffers=True)
        self.start_epoch = start_epoch
        self._trainer = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # The average lives where training happens. Lightning would put it on the module's
        # device at setup, which is still the CPU (the module moves to the GPU later), and
        # then copy every parameter across each step.
        self._device = trainer.strategy.root_device
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self._trainer.current_epoch >= self.start_epoch

    def started(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.started():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.started():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.started():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.started():
            super().on_train_end(trainer, pl_module)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose saved state follows the run folder.

    Its state names the folder it wrote to. Resumed from a run that was moved or copied (or
    reached through another path), Lightning would warn that "the dirpath has changed" and
    drop the best score so far, so that the first epoch after the resume became the best
    one whatever its score. The files keep their names inside ``RUN/checkpoints``: the state
    is read as the same files in the folder the run is in now.
    """

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's own key, so that its checkpoints and ours read each other's state.
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = moved_state(state_dict, str(old), str(self.dirpath))
        super().load_state_dict(state_dict)


def moved_state(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A ModelCheckpoint state with its file paths in folder ``old`` moved to ``new``."""

    def move(path: Any) -> Any:
        if isinstance(path, str) and path and Path(path).parent == Path(old):
            return str(Path(new) / Path(path).name)
        return path

    state = dict(state, dirpath=new)
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = move(state[key])
    if "best_k_models" in state:
        state["best_k_models"] = {move(k): v for k, v in state["best_k_models"].items()}
    return state
