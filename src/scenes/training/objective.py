"""What training minimises and measures, by task.

single-label (multiclass): softmax cross-entropy with label smoothing and class weights;
MixUp/CutMix from torchvision blend class indices into soft targets.

multi-label: one sigmoid per class with binary cross-entropy; label smoothing moves each
binary target towards 1/2; MixUp/CutMix blend the label vectors like the images.

The validation loss is always the plain loss (no smoothing, no weights): ``monitor:
val_loss`` compares what the model predicts, not a training device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .imbalance import class_weights


class Objective:
    def __init__(self, task: str, cfg, num_classes: int, class_counts: np.ndarray | None = None):
        self.task = task
        self.smoothing = cfg.train.label_smoothing
        self.mixup_alpha, self.cutmix_alpha = cfg.augment.mixup_alpha, cfg.augment.cutmix_alpha
        if task == "multilabel":
            self.train_loss = nn.BCEWithLogitsLoss()
            self.val_loss = nn.BCEWithLogitsLoss()
            self._mix = None
            return
        counts = class_counts if class_counts is not None else np.ones(num_classes)
        weights = class_weights(counts, cfg.train.class_weights, cfg.train.effective_beta)
        self.train_loss = nn.CrossEntropyLoss(
            weight=None if weights is None else torch.tensor(weights, dtype=torch.float32),
            label_smoothing=self.smoothing,
        )
        self.val_loss = nn.CrossEntropyLoss()
        self._mix = torchvision_mixing(self.mixup_alpha, self.cutmix_alpha, num_classes)

    def modules(self) -> dict[str, nn.Module]:
        """The losses, to register on the LightningModule (their weights follow its device)."""
        return {"loss_fn": self.train_loss, "val_loss_fn": self.val_loss}

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def training_targets(self, targets: torch.Tensor) -> torch.Tensor:
        if self.task == "multilabel":
            return targets * (1.0 - self.smoothing) + 0.5 * self.smoothing
        return targets

    def metric_inputs(
        self, logits: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions, targets) as the task's torchmetrics take them; soft targets (mixed
        images) count for their dominant class, or for the labels at least half present."""
        if self.task == "multilabel":
            return torch.sigmoid(logits.float()), (targets >= 0.5).int()
        if targets.ndim == 2:
            targets = targets.argmax(dim=1)
        return logits, targets

    def mix(self, images: torch.Tensor, targets: torch.Tensor):
        """MixUp or CutMix of a batch: (images, soft targets)."""
        if self.task != "multilabel":
            return self._mix(images, targets)
        return mix_label_vectors(images, targets.float(), self.mixup_alpha, self.cutmix_alpha)


def torchvision_mixing(mixup_alpha: float, cutmix_alpha: float, num_classes: int):
    """torchvision's MixUp and/or CutMix over a batch (one of them per batch when both are
    on): images blended or patched together, labels as soft targets. None when both are off."""
    from torchvision.transforms import v2

    mixers = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def mix_label_vectors(
    images: torch.Tensor, targets: torch.Tensor, mixup_alpha: float, cutmix_alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp or CutMix (one per batch when both are on) with multi-hot targets: each image is
    paired with another of the batch, and the two label vectors are blended in the share each
    image has of the result. torchvision's transforms one-hot class indices, so they cannot."""
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    pair = torch.randperm(images.shape[0], device=images.device)
    if use_cutmix:
        height, width = images.shape[-2:]
        cut_h, cut_w = int(height * (1 - lam) ** 0.5), int(width * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        images = images.clone()
        images[..., top:bottom, left:right] = images[pair][..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)  # the patch's true share
    else:
        images = lam * images + (1.0 - lam) * images[pair]
    return images, lam * targets + (1.0 - lam) * targets[pair]
