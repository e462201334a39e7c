"""``scenes data select``: the run's model scores a pool of unlabelled photos, a strategy
(``ranking``) picks the ``n`` to label next, and the list goes to a CSV
(``scenes.selection_file``).

Probabilities come from ``Predictor`` exactly as ``scenes predict`` gives them; ``diverse``
also takes the network's penultimate features from the same forward pass (the run's
fine-tuned backbone), so the pool is decoded and run once. Photos that the run's
``split.csv`` lists (train, val or excluded: their label is known) are skipped, matched by
resolved path. An unreadable photo is named in a warning and the exit code is 1, as in
``scenes predict``; the list of the others is still written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import INFERENCE_BATCH
from ..console import plural, stage
from ..errors import MissingPathError, UsageError
from ..models.bundle import bundle_run_dir
from ..outputs import output_file
from ..rundir import RunDir
from ..selection_file import SelectionRow, write_selection
from ..serve.answers import Answers, best_classes
from ..serve.decoding import decoded_batches
from ..serve.predict import collect_images
from ..serve.predictor import Predictor
from .ranking import STRATEGIES, select

log = logging.getLogger(__name__)


@dataclass
class ScoredPool:
    paths: list[Path]  # the readable photos, in pool order
    probs: np.ndarray  # (len(paths), classes)
    features: np.ndarray | None  # (len(paths), D) when asked for
    failed: dict[str, str]  # unreadable file -> why


def check_options(strategy: str, seed: int | None, out: str) -> None:
    """Refuse what cannot be meant before any photo is decoded."""
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")
    if seed is not None and strategy != "random":
        raise UsageError(f"--seed is for --strategy random; {strategy} is deterministic")
    if Path(out).suffix.lower() != ".csv":
        raise UsageError(f"--out {out}: the selection is a CSV file; name it e.g. selection.csv")
    output_file(out, example="selection.csv")


def unlabelled(run: str, files: list[Path]) -> tuple[list[Path], int]:
    """``files`` (each once, resolved) without those the run's split.csv lists; how many
    were left out that way."""
    split = RunDir(bundle_run_dir(run))
    known = {row.path for row in split.read_split()} if split.split_csv.is_file() else set()
    unique = list(dict.fromkeys(f.resolve() for f in files))
    kept = [f for f in unique if f not in known]
    return kept, len(unique) - len(kept)


def score_pool(
    predictor: Predictor, files: list[Path], batch_size: int, features: bool
) -> ScoredPool:
    """Probabilities (and features) of every readable photo, batch by batch, with progress."""
    if features:
        predictor.runner.want_features = True  # the penultimate layer, from the same pass
    paths, probs, feats, failed = [], [], [], {}
    with stage("scoring the pool", len(files)) as bar:
        for chunk, images, ok, errors in decoded_batches(predictor.load_images, files, batch_size):
            if ok:
                logits, found = predictor.forward(images)
                answers = Answers.of(predictor.meta, logits, found, predictor.reference)
                probs.append(answers.probs)
                if features:
                    feats.append(found)
                paths.extend(chunk[i] for i in ok)
            failed.update({str(chunk[i]): why for i, why in errors.items()})
            bar.update(len(chunk))
    classes = len(predictor.class_names)
    return ScoredPool(
        paths,
        np.concatenate(probs) if probs else np.empty((0, classes)),
        np.concatenate(feats) if feats else None,
        failed,
    )


def selection_rows(pool: ScoredPool, strategy: str, n: int, seed: int, names) -> list:
    chosen, scores = select(strategy, pool.probs, n, pool.features, seed)
    rows = []
    for rank, (i, score) in enumerate(zip(chosen, scores), start=1):
        (label_1, prob_1), (label_2, prob_2) = best_classes(pool.probs[i], names, 2)
        rows.append(
            SelectionRow(
                rank, pool.paths[i], float(score), strategy, label_1, prob_1, label_2, prob_2
            )
        )
    return rows


def run_select(
    run: str,
    pool: list[str],
    n: int,
    out: str,
    strategy: str = "margin",
    seed: int | None = None,
    batch_size: int = INFERENCE_BATCH,
    device: str = "auto",
) -> int:
    """The ``n`` photos of ``pool`` to label next, to ``out``; exit 1 when one was unreadable."""
    check_options(strategy, seed, out)
    found = collect_images(pool)  # a missing POOL path is refused before the model loads
    if not found:
        raise MissingPathError(f"no image files in {', '.join(pool)}")
    predictor = Predictor.load(run, device=device)
    if predictor.meta.task == "multilabel":
        raise UsageError(
            f"{run} is a multi-label run: data select ranks single-label runs (margin and "
            "entropy compare classes that exclude each other)"
        )
    files, known = unlabelled(run, found)
    if known:
        log.info("skipped %s that the run's split.csv lists (labelled)", plural(known, "photo"))
    if not files:
        raise UsageError(f"every photo of {', '.join(pool)} is in {run}'s split.csv: none to label")
    scored = score_pool(predictor, files, batch_size, features=strategy == "diverse")
    if scored.failed:
        named = "\n  ".join(f"{path}: {why}" for path, why in scored.failed.items())
        log.warning(
            "%s could not be read, left out:\n  %s", plural(len(scored.failed), "file"), named
        )
    if not scored.paths:
        log.error("none of the %s could be read: nothing written", plural(len(files), "photo"))
        return 1
    if n > len(scored.paths):
        log.warning(
            "--n %d is more than the %s that could be scored: all of them are listed",
            n,
            plural(len(scored.paths), "photo"),
        )
    rows = selection_rows(scored, strategy, n, 0 if seed is None else seed, predictor.class_names)
    write_selection(out, rows)
    print(
        f"wrote {plural(len(rows), 'photo')} to label next to {out} ({strategy}, from "
        f"{plural(len(scored.paths), 'scored photo')})"
    )
    return 1 if scored.failed else 0
