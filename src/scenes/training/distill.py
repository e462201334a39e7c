"""Distillation: the model learns from a teacher's soft predictions besides the labels.

``train.teacher`` names one or more trained runs (or bundles, ensembles included); their
probabilities are averaged (``models.ensemble.averaging``: each teacher sees the training batch
as its own weights expect, resized and renormalised from the student's input inside the
network). The teacher is frozen, in eval mode and without gradients; being deterministic, an
interrupted and resumed run computes the same targets. It is not part of the student's
weights, checkpoints or bundle: ``config.yaml`` and the bundle's ``training`` record which runs
taught it and how (``train.teacher_outputs``):

- ``live``: the teacher outputs every augmented (and mixed) batch, exactly what the student is
  shown, at the cost of its forward pass on every training step.
- ``cached``: it answers each training image once, un-augmented (the student's decoded pixels,
  normalised as the student's are), before the first epoch; every augmented view of that image
  is then taught that answer, looked up by the image's row in the training set. The teacher's
  cost is one pass over the training images, whatever the epochs; its answer is for the whole
  image, not the crop the student sees. The answers are kept in the cache folder
  (``teacher_outputs``): another seed or a resume with the same teachers and images reads them.

The loss is Hinton et al.'s: ``(1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T ||
student_T)``, with both distributions softened by the temperature ``T``. Validation loss stays
plain cross-entropy on the labels, so validation figures mean what they say.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn

from ..console import plural, stage
from ..data.device_loader import read_rows
from ..data.transforms import normalize_batch
from ..errors import DataError
from ..models.bundle import load_bundle, read_meta, resolve_bundle_dir
from ..models.ensemble import averaging
from ..models.meta import BundleMeta
from .teacher_outputs import answers_files, answers_key, load_answers, save_answers

log = logging.getLogger(__name__)


class Distiller:
    def __init__(
        self,
        teacher: nn.Module,
        alpha: float,
        temperature: float,
        names: list[str],
        cached: bool = False,
        cache_dir: Path | None = None,
    ):
        self.teacher: nn.Module | None = teacher.eval().requires_grad_(False)
        self.alpha = alpha
        self.temperature = temperature
        self.names = names  # the teachers' bundle folders, for the record
        self.cached = cached
        self.cache_dir = cache_dir  # where cached answers are kept across runs (None: not kept)
        # cached: the teacher's output (log of its averaged probabilities) per training image
        self.answers: torch.Tensor | None = None

    def to(self, device) -> Distiller:
        if self.teacher is not None:
            self.teacher.to(device)
        if self.answers is not None:
            self.answers = self.answers.to(device)
        return self

    def answer_once(self, pixels, mean: list[float], std: list[float], batch: int = 64) -> None:
        """cached: the teacher's answers for every image of ``pixels`` (the training set's
        (N, H, W, 3) uint8 rows), read from the cache folder when an earlier run stored them,
        else computed and stored; kept on the teacher's device. The teacher is then let go
        (its memory is not needed again). Nothing to do when live or when already answered."""
        if not self.cached or self.answers is not None:
            return
        device = next(self.teacher.parameters()).device
        key = None
        if self.cache_dir is not None:
            key = answers_key([Path(n) for n in self.names], pixels, mean, std)
        if key is not None:
            array_file, _ = answers_files(self.cache_dir, key)
            try:
                array_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError:  # a cache folder that cannot be written: answered, not kept
                key = None
        if key is None:
            self.answers = self._answer(pixels, mean, std, batch)
        else:
            # DDP processes ask at once: one answers, the others wait and read its answers
            with FileLock(f"{array_file}.lock"):
                self.answers = load_answers(self.cache_dir, key, len(pixels))
                if self.answers is None:
                    self.answers = self._answer(pixels, mean, std, batch)
                    save_answers(self.cache_dir, key, self.answers, self.names)
                else:
                    log.info(
                        "teacher outputs: %s read from %s", plural(len(pixels), "image"), array_file
                    )
        self.answers = self.answers.to(device)
        self.teacher = None

    @torch.no_grad()
    def _answer(self, pixels, mean: list[float], std: list[float], batch: int):
        device = next(self.teacher.parameters()).device
        answers = []
        with stage("teacher outputs", len(pixels)) as bar:
            for start in range(0, len(pixels), batch):
                stop = min(start + batch, len(pixels))
                block = torch.from_numpy(read_rows(pixels, start, stop)).to(device)
                x = normalize_batch(block.permute(0, 3, 1, 2), mean, std)
                answers.append(self.teacher(x).float())
                bar.update(stop - start)
        return torch.cat(answers)

    def loss(
        self,
        label_loss: torch.Tensor,
        logits: torch.Tensor,
        inputs: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss: the label loss blended with the teacher's soft targets, on the
        same (normalised, student-sized) ``inputs`` when live, or the cached answers for the
        batch's ``rows`` of the training set."""
        t = self.temperature
        with torch.no_grad():
            if self.cached:
                if self.answers is None or rows is None:
                    raise RuntimeError("cached teacher outputs need answer_once and batch rows")
                answers = self.answers[rows.to(self.answers.device)]
            else:
                answers = self.teacher(inputs.float()).float()
            teacher = torch.softmax(answers / t, dim=1)
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
    cached = tc.teacher_outputs == "cached"
    return Distiller(
        network,
        tc.distill_alpha,
        tc.distill_temperature,
        names,
        cached,
        cfg.resolved_cache_dir() if cached else None,
    )
