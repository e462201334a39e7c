"""``model.init`` (``scenes train --init RUN``): a new run that starts from a trained run's
bundle instead of ImageNet weights, on new data that may bring new classes. It is not a
resume: the new run has its own folder, split and recipe; ``config.yaml`` records the run it
started from (``model.init``, resolved) and the SHA-256 of its ``model.safetensors``
(``model.init_sha256``; given, a run whose weights differ is refused).

- Classes: RUN's classes keep their indices, in RUN's order; classes only the new data has
  follow them, sorted. The new data's labels are mapped by class name.
- The head: RUN's rows are copied by class name. A new class's row is the mean of RUN's rows
  and its bias the mean of RUN's biases less ``NEW_CLASS_MARGIN``, so its logit is the mean
  of the old logits less the margin: at most e^-margin of the largest old one's exponential,
  on every input. At step 0 each old class's probability is RUN's, moved by at most
  (new classes) x e^-margin = 1e-5 per new class.
- A class of RUN that the new data lacks keeps its row (it can still be predicted);
  ``train.rehearsal: N`` adds N of RUN's own training images of it (its split.csv, split
  ``train``), chosen with ``data.split_seed`` and listed in the new run's ``rehearsal.csv``.
  A class the new data has is learnt from the new data alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import atomic
from ..config import Config
from ..csvfile import SafeWriter
from ..data.discover import LabelledFiles
from ..errors import ConfigError, MissingPathError
from ..models.base import BuiltModel
from ..models.bundle import (
    WEIGHTS_FILE,
    bundle_run_dir,
    read_meta,
    resolve_bundle_dir,
    weights_digest,
)
from ..models.meta import BundleMeta
from ..models.registry import build_model, split_name
from ..models.weights import load_state_file
from ..rundir import RunDir, SplitRow

log = logging.getLogger(__name__)

NEW_CLASS_MARGIN = math.log(1e5)  # a new class starts e^-margin below the old classes' mean
REHEARSAL_FILE = "rehearsal.csv"


@dataclass(frozen=True)
class InitRun:
    """The run a new run starts from: its bundle, description and weights digest."""

    given: str
    bundle: Path
    meta: BundleMeta
    sha256: str

    @property
    def run_dir(self) -> Path:
        return bundle_run_dir(self.bundle)


@dataclass
class ContinuedFiles:
    """The new data's files with RUN's classes first, and the rehearsal images among them."""

    files: LabelledFiles
    rehearsed: list[SplitRow] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)  # old classes with no image


def read_init(cfg: Config) -> InitRun | None:
    """``model.init``'s run, checked against the recipe before any image is decoded."""
    given = cfg.model.init
    if given is None:
        return None
    try:
        bundle = resolve_bundle_dir(given)
    except MissingPathError as exc:
        raise MissingPathError(f"model.init (--init): {exc}") from None
    meta = read_meta(bundle)
    if meta.backend == "ensemble" or meta.task != "multiclass":
        raise ConfigError(
            f"model.init={given}: a {meta.backend} {meta.task} bundle; a run starts from one "
            "single-label model"
        )
    wanted = "{}:{}".format(*split_name(cfg.model.name))
    if wanted != meta.model_name:
        raise ConfigError(
            f"model.init={given} is a {meta.model_name} and model.name is {cfg.model.name} "
            f"({wanted}): a run starts from weights of its own architecture; use "
            f"--model {meta.model_name}"
        )
    digest = weights_digest(bundle)
    if cfg.model.init_sha256 not in (None, digest):
        raise ConfigError(
            f"model.init_sha256={cfg.model.init_sha256} but {bundle / WEIGHTS_FILE} has "
            f"{digest}: the run's weights changed since this recipe was written"
        )
    return InitRun(given, bundle, meta, digest)


def recorded_config(cfg: Config, init: InitRun) -> Config:
    """The config the new run records: where it started, resolved, with the weights' digest."""
    recorded = cfg.model_copy(deep=True)
    recorded.model.init = str(Path(init.given).resolve())
    recorded.model.init_sha256 = init.sha256
    return recorded


def continued_files(files: LabelledFiles, init: InitRun, rehearsal: int, seed: int):
    """The new data relabelled into RUN's class order (new classes after, sorted), plus
    ``rehearsal`` images of each old class the new data lacks."""
    old = init.meta.class_names
    names = [*old, *sorted(set(files.class_names) - set(old))]
    index = {name: i for i, name in enumerate(names)}
    labels = [index[files.class_names[y]] for y in files.labels]
    present = {names[y] for y in labels}
    lacking = [name for name in old if name not in present]
    rehearsed = rehearsal_rows(init, lacking, rehearsal, seed) if rehearsal else []
    known = {Path(p).resolve() for p in files.paths}
    rehearsed = [row for row in rehearsed if row.path.resolve() not in known]
    paths = [*files.paths, *(row.path for row in rehearsed)]
    labels += [index[row.label] for row in rehearsed]
    filled = {row.label for row in rehearsed}
    continued = LabelledFiles(paths=paths, labels=labels, class_names=names)
    return ContinuedFiles(continued, rehearsed, [c for c in lacking if c not in filled])


def rehearsal_rows(init: InitRun, classes: list[str], per_class: int, seed: int) -> list[SplitRow]:
    """``per_class`` of RUN's training images of each class in ``classes``, seeded."""
    run = RunDir(init.run_dir)
    if not run.split_csv.is_file():
        raise MissingPathError(
            f"train.rehearsal: {run.split_csv} not found; rehearsal draws from the training "
            "images of the run --init names (its split.csv), so give a run folder"
        )
    rows = [row for row in run.read_split() if row.split == "train"]
    rng = np.random.default_rng(seed)
    chosen = []
    for name in classes:
        candidates = sorted(row.path for row in rows if row.label == name and row.path.is_file())
        picks = sorted(candidates[i] for i in rng.permutation(len(candidates))[:per_class])
        if len(picks) < per_class:
            log.warning(
                "warning: train.rehearsal=%d but %s lists %d readable training images of %s",
                per_class,
                run.split_csv,
                len(picks),
                name,
            )
        chosen += [SplitRow(path, name, "train") for path in picks]
    return chosen


def write_rehearsal(run_dir: Path, rows: list[SplitRow], init_run: Path) -> None:
    """``rehearsal.csv``: which of the new run's images came from the run it started from."""
    with atomic.replacing(Path(run_dir) / REHEARSAL_FILE, "w") as fh:
        writer = SafeWriter(fh)
        writer.writerow(["path", "label", "source_run"])
        for row in rows:
            writer.writerow([str(row.path.resolve()), row.label, str(init_run)])


def build_from_init(cfg: Config, class_names: list[str], init: InitRun) -> BuiltModel:
    """RUN's network with a head for ``class_names``: old rows copied, new rows below them."""
    meta = init.meta
    built = build_model(
        cfg.model.name,
        len(class_names),
        pretrained=False,
        image_size=cfg.data.image_size,
        class_names=class_names,
        backend_config=meta.backend_config,
    )
    state = load_state_file(init.bundle / WEIGHTS_FILE)  # safetensors: data only
    state.update(head_rows(state, built.head, meta.class_names, class_names))
    try:
        built.module.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"model.init={init.given}: its weights do not fit {cfg.model.name} at "
            f"data.image_size={cfg.data.image_size} (the run used {meta.image_size}): "
            f"{str(exc)[:300]}"
        ) from None
    built.mean, built.std, built.interpolation = meta.mean, meta.std, meta.interpolation
    built.weights = f"run {init.run_dir} (model.safetensors sha256 {init.sha256[:12]})"
    return built


def head_rows(state: dict, head: str, old_names: list[str], new_names: list[str]) -> dict:
    """The classifier's weight and bias for ``new_names`` from RUN's for ``old_names``."""
    import torch

    weight, bias = state.get(f"{head}.weight"), state.get(f"{head}.bias")
    if weight is None or bias is None:
        raise ConfigError(
            f"the run's classifier {head} has no weight and bias in its bundle: new classes "
            "cannot be added below the old ones"
        )
    old_index = {name: i for i, name in enumerate(old_names)}
    new_weight, new_bias = weight.mean(0), bias.mean() - NEW_CLASS_MARGIN
    rows = [weight[old_index[n]] if n in old_index else new_weight for n in new_names]
    biases = [bias[old_index[n]] if n in old_index else new_bias for n in new_names]
    return {f"{head}.weight": torch.stack(rows), f"{head}.bias": torch.stack(biases)}
