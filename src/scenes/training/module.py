"""The LightningModule: a classifier over uint8 batches, normalised on the device."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from ..config import Config
from ..data.batch_augment import batch_generator, make_batch_augment
from ..data.transforms import normalize_batch
from ..metrics import epoch_metrics
from ..models.base import BuiltModel
from ..rundir import monitor_mode
from .distill import Distiller
from .objective import Objective
from .schedules import lr_multiplier


def weight_decay_groups(
    params: list[nn.Parameter], weight_decay: float, norm_weight_decay: float | None
) -> list[dict[str, Any]]:
    """Two optimizer groups: weights, and the 1-D parameters (normalisation scales and
    shifts, biases) that get ``norm_weight_decay`` (torchvision's references and timm decay
    them not at all: shrinking a BatchNorm scale only fights the next layer's weights)."""
    if norm_weight_decay is None:
        norm_weight_decay = weight_decay
    decayed = [p for p in params if p.ndim > 1]
    not_decayed = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": not_decayed, "weight_decay": norm_weight_decay},
    ]
    return [g for g in groups if g["params"]]


class SceneClassifier(L.LightningModule):
    def __init__(
        self,
        built: BuiltModel,
        cfg: Config,
        class_names: list[str],
        class_counts: np.ndarray | None = None,
        distiller: Distiller | None = None,
    ):
        super().__init__()
        # Not a registered submodule: the teacher stays out of the model's parameters,
        # checkpoints and bundle (it is moved to the device in on_fit_start).
        self.distiller = distiller
        self.model = built.module
        self.built = built
        self.cfg = cfg
        self.class_names = list(class_names)
        n = len(class_names)
        self.objective = Objective(cfg.task, cfg, n, class_counts)
        # Registered here so the class weights follow the module to its device.
        self.loss_fn, self.val_loss_fn = self.objective.train_loss, self.objective.val_loss
        self.train_metrics = epoch_metrics(n, cfg.task)
        self.val_metrics = epoch_metrics(n, cfg.task)
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.epoch_summary: dict[str, float] = {}
        # Training batches are augmented here, on the device, as whole batches.
        self.batch_augment = make_batch_augment(cfg.augment.preset, cfg.augment.p)
        self.backbone_frozen = False
        # With several processes a frozen backbone is held still instead (see setup()).
        self.hold_backbone_still = False
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_state: dict | None = None  # restored from a checkpoint, if resuming
        if cfg.model.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.set_backbone_frozen(cfg.train.mode in ("head", "fine_tune"))

    # -- freezing ---------------------------------------------------------------------------
    def set_backbone_frozen(self, frozen: bool) -> None:
        self.backbone_frozen = frozen
        for p in self.built.backbone_parameters():
            p.requires_grad_(not frozen or self.hold_backbone_still)
        self.train(self.training)

    def setup(self, stage: str) -> None:
        # DDP hooks up gradient all-reduce only for parameters that require grad when it wraps
        # the model (after this hook): a backbone unfrozen later would train on each process's
        # shard alone and the copies drift apart (Lightning issue 20340). So under DDP the
        # backbone always requires grad, and while "frozen" its gradients are dropped before
        # each optimizer step (AdamW and SGD skip parameters without one: no update, no
        # decay, no optimizer state, as in one process). The head phase then costs a backward
        # pass through the backbone, which one process avoids.
        if self.trainer.world_size > 1:
            self.hold_backbone_still = True
            self.set_backbone_frozen(self.backbone_frozen)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.backbone_frozen and self.hold_backbone_still:
            for p in self.built.backbone_parameters():
                p.grad = None

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.backbone_frozen:
            # A frozen backbone must not drift through BatchNorm running statistics either.
            head = self.model.get_submodule(self.built.head)
            head_modules = {id(m) for m in head.modules()}
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in head_modules:
                    m.eval()
        return self

    def on_train_epoch_start(self) -> None:
        tc = self.cfg.train
        if tc.mode == "fine_tune" and self.current_epoch >= tc.head_epochs and self.backbone_frozen:
            self.set_backbone_frozen(False)
            if tc.scheduler == "plateau":  # the other schedules apply the factor themselves
                for group in self.optimizers().optimizer.param_groups:
                    group["lr"] *= tc.unfreeze_lr_factor

    # -- steps ------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.distiller is not None:
            self.distiller.to(self.device)
            # cached teacher outputs: one pass over the training images, before epoch one
            train = self.trainer.datamodule.data.train
            self.distiller.answer_once(train.pixels, self.built.mean, self.built.std)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or mixed float) batch -> the normalised input of the network."""
        return normalize_batch(
            images, self.built.mean, self.built.std, self.cfg.model.channels_last
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Under precision=bf16-true the weights are bf16: the input must be too.
        return self.model(self.inputs(images).to(next(self.model.parameters()).dtype))

    def _step(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: nn.Module,
        loss_meter: MeanMetric,
        metrics: MetricCollection,
        loss_targets: torch.Tensor | None = None,
        distil: bool = False,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.inputs(images)
        logits = self.model(x.to(next(self.model.parameters()).dtype))
        loss = loss_fn(logits, targets if loss_targets is None else loss_targets)
        if distil and self.distiller is not None:
            loss = self.distiller.loss(loss, logits, x, rows)
        loss_meter.update(loss.detach(), weight=len(targets))
        metrics.update(*self.objective.metric_inputs(logits.detach(), targets))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        # (images, labels), or (images, labels, rows) when the teachers' answers are cached
        rows = batch[2] if len(batch) == 3 else None
        images, targets = self.augmented(batch[:2], batch_idx)
        if self.objective.mixes:
            images, targets = self.objective.mix(images, targets)  # blended, soft targets
        loss_targets = self.objective.training_targets(targets)
        return self._step(
            images,
            targets,
            self.loss_fn,
            self.train_loss,
            self.train_metrics,
            loss_targets,
            distil=True,
            rows=rows,
        )

    def augmented(self, batch, batch_idx: int):
        """The training batch, augmented on its device with parameters keyed by (seed, epoch,
        batch, rank): a resumed run and an uninterrupted one see the same images."""
        images, labels = batch
        key = (self.cfg.seed, self.current_epoch, batch_idx, self.global_rank)
        return self.batch_augment(images, batch_generator(*key)), labels

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self._step(images, targets, self.val_loss_fn, self.val_loss, self.val_metrics)

    def on_validation_epoch_start(self) -> None:
        if self.trainer.world_size > 1:
            # Each DDP process updated its BatchNorm statistics with its own last batch, so
            # the processes hold slightly different buffers. Validate the first process's
            # model everywhere: it is the one the checkpoints and the bundle hold, so the
            # validation metrics equal what `scenes evaluate` computes from the bundle.
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def on_validation_epoch_end(self) -> None:
        # Validation runs at the end of each training epoch, so both splits are complete here.
        summary = {"val_loss": self.val_loss.compute()}
        summary.update({f"val_{k}": v for k, v in self.val_metrics.compute().items()})
        if self.train_loss.update_count:
            summary["train_loss"] = self.train_loss.compute()
            summary.update({f"train_{k}": v for k, v in self.train_metrics.compute().items()})
        for meter in (self.train_loss, self.val_loss, self.train_metrics, self.val_metrics):
            meter.reset()
        self.log_dict(summary, prog_bar=False)
        self.epoch_summary = {k: float(v) for k, v in summary.items()}
        if self.plateau is not None and not self.trainer.sanity_checking:
            self.plateau.step(self.epoch_summary[self.cfg.train.monitor])

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        tc = self.cfg.train
        params = (
            self.built.head_parameters() if tc.mode == "head" else list(self.model.parameters())
        )
        groups = weight_decay_groups(params, tc.weight_decay, tc.norm_weight_decay)
        if tc.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=tc.lr)
        else:
            optimizer = torch.optim.SGD(groups, lr=tc.lr, momentum=tc.momentum, nesterov=True)
        if tc.scheduler == "plateau":
            # Stepped by this module after each validation, not by Lightning: Lightning steps
            # epoch schedulers after the epoch's checkpoint is written, so a resumed run
            # would lose the reduction decided at the epoch it resumes from.
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=monitor_mode(tc.monitor),
                factor=tc.gamma,
                patience=tc.plateau_patience,
            )
            if self._plateau_state is not None:
                self.plateau.load_state_dict(self._plateau_state)
            return {"optimizer": optimizer}
        steps_per_epoch = max(1, self.trainer.estimated_stepping_batches // tc.epochs)
        multiplier = lr_multiplier(tc)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: multiplier(step / steps_per_epoch)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- checkpoint extras ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["scenes"] = {
            "class_names": self.class_names,
            "backend": self.built.backend,
            "architecture": self.built.architecture,
            "head": self.built.head,
            "mean": self.built.mean,
            "std": self.built.std,
            "interpolation": self.built.interpolation,
            "weights": self.built.weights,
            "backbone_frozen": self.backbone_frozen,
            "backend_config": self.built.backend_config,
            "world_size": self.trainer.world_size,
        }
        if self.plateau is not None:
            checkpoint["scenes_plateau"] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.set_backbone_frozen(checkpoint.get("scenes", {}).get("backbone_frozen", False))
        # on_load_checkpoint runs before configure_optimizers creates the scheduler
        self._plateau_state = checkpoint.get("scenes_plateau")
