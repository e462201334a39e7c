"""Distillation: the model learns from a teacher's soft predictions besides the labels.

``train.teacher`` names one or more trained runs (or bundles, ensembles included); their
probabilities are averaged (``models.ensemble.averaging``: each teacher sees the training batch
as its own weights expect, resized and renormalised from the student's input inside the
network). The teacher runs on the same augmented (and mixed) batch as the student, frozen, in
eval mode and without gradients, so it answers exactly what the student is shown; being
deterministic, an interrupted and resumed run computes the same targets. It is not part of the
student's weights, checkpoints or bundle: ``config.yaml`` and the bundle's ``training`` record
which runs taught it.

The loss is Hinton et al.'s: ``(1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T ||
student_T)``, with both distributions softened by the temperature ``T``. Validation loss stays
plain cross-entropy on the labels, so validation figures mean what they say.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..models.bundle import load_bundle, read_meta, resolve_bundle_dir
from ..models.ensemble import averaging
from ..models.meta import BundleMeta


class Distiller:
    def __init__(self, teacher: nn.Module, alpha: float, temperature: float, names: list[str]):
        self.teacher = teacher.eval().requires_grad_(False)
        self.alpha = alpha
        self.temperature = temperature
        self.names = names  # the teachers' bundle folders, for the record

    def to(self, device) -> Distiller:
        self.teacher.to(device)
        return self

    def loss(self, label_loss: torch.Tensor, logits: torch.Tensor, inputs: torch.Tensor):
        """The training loss: the label loss blended with the teacher's soft targets on the
        same (normalised, student-sized) ``inputs``."""
        t = self.temperature
        with torch.no_grad():
            teacher = torch.softmax(self.teacher(inputs.float()).float() / t, dim=1)
        student = F.log_softmax(logits.float() / t, dim=1)
        soft = F.kl_div(student, teacher, reduction="batchmean") * (t * t)
        return (1.0 - self.alpha) * label_loss + self.alpha * soft


def teacher_metas(paths: list[str], class_names: list[str]) -> list[tuple[Path, BundleMeta]]:
    """Each teacher's bundle and description, checked against the data: the same classes in
    the same order, one label per image. Refused before any image is decoded."""
    found = []
    for path in paths:
        bundle = resolve_bundle_dir(path)
        meta = read_meta(bundle)
        if meta.task != "multiclass":
            raise DataError(f"train.teacher {path}: a multi-label model cannot teach (yet)")
        if meta.class_names != list(class_names):
            raise DataError(
                f"train.teacher {path} knows the classes {', '.join(meta.class_names)}; the data "
                f"has {', '.join(class_names)}: a teacher must have the data's classes, in order"
            )
        found.append((bundle, meta))
    return found


def make_distiller(cfg, class_names: list[str], student_meta: BundleMeta) -> Distiller | None:
    """The teacher(s) of ``cfg.train.teacher`` over the student's input, or None."""
    tc = cfg.train
    if not tc.teacher:
        return None
    teachers = teacher_metas(tc.teacher, class_names)
    modules = [load_bundle(bundle)[0] for bundle, _ in teachers]
    network = averaging(
        modules,
        [meta for _, meta in teachers],
        student_meta.mean,
        student_meta.std,
        student_meta.image_size,
    )
    names = [str(bundle) for bundle, _ in teachers]
    return Distiller(network, tc.distill_alpha, tc.distill_temperature, names)
