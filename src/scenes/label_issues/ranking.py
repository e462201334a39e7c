"""Which training images' labels disagree with what they show, ranked most suspicious first.

Every image gets out-of-sample class probabilities from a logistic-regression head on frozen
backbone features, k-fold cross-validated: no image is scored by a head that was fitted on its
own label. cleanlab's confident learning then flags the images whose given label is unlikely
under those probabilities and ranks them, most likely errors first (self-confidence, the
predicted probability of the given label, ranked the planted and the real errors best of
cleanlab's scores here: see the README). ``issue_outputs`` writes the result down;
``issues.run_issues`` is the ``scenes data issues`` command.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import DEFAULT_RANKING_METHOD, INFERENCE_BATCH, RANKING_METHODS
from ..console import stage
from ..data.discover import LabelledFiles
from ..data.images import Preprocess
from ..errors import DataError, UsageError
from ..models.features import Backbone, FeatureCompute, image_features

# Inverse L2 strength of the head on standardised features. On the Intel features 1e-3 caught
# the most planted flips (README, Results), also on small folders, within 0.2 points of the best
# cross-validated accuracy; weaker priors overfit (C=1: 88.6%) and fit slower.
HEAD_C = 1e-3


@dataclass
class LabelIssues:
    """Out-of-sample probabilities of every readable image and cleanlab's verdict on them."""

    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    pred_probs: np.ndarray  # (N, K), each row from the head that did not see that image
    scores: np.ndarray  # label quality in [0, 1]: low means the given label is unlikely
    ranked: np.ndarray  # indices of the flagged images, most likely label errors first
    method: str
    folds: int
    backbone: str
    skipped: dict[str, str]
    preprocess: Preprocess = Preprocess(150)  # the backbone's input pixels (for the figure)

    @property
    def suggested(self) -> np.ndarray:
        return self.pred_probs.argmax(axis=1)

    @property
    def cv_accuracy(self) -> float:
        """Top-1 accuracy of the cross-validated head against the given labels."""
        return float((self.suggested == self.labels).mean())

    def pair_counts(self, indices: np.ndarray) -> Counter:
        """(given, suggested) class names -> number of images among ``indices``."""
        names = self.class_names
        return Counter(
            (names[self.labels[i]], names[self.suggested[i]]) for i in np.asarray(indices)
        )


def check_folds(labels: np.ndarray, class_names: list[str], folds: int) -> None:
    if folds < 2:
        raise UsageError(f"--folds must be at least 2, got {folds}")
    counts = np.bincount(labels, minlength=len(class_names))
    small = [f"{class_names[k]} ({n})" for k, n in enumerate(counts) if n < folds]
    if small:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {folds} images per class; "
            f"too few in: {', '.join(small)}. Use a smaller --folds or add images"
        )


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    folds: int = 5,
    seed: int = 42,
    groups: list[str] | None = None,
    num_classes: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(N, K) probabilities, row i from a head fitted on the folds that do not hold image i.

    ``groups`` (content digests) keep identical files in the same fold: a copy in the
    training folds would make its twin look in-sample.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    num_classes = num_classes or int(labels.max()) + 1
    groups = groups if groups is not None else list(range(len(labels)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    splits = list(splitter.split(features, labels, groups))
    # One BLAS thread: these matrices are small, and threads fighting over shared cores made
    # each fit ~10x slower on the development machine.
    with (
        threadpool_limits(limits=1, user_api="blas"),
        stage("cross-validating heads", len(splits), "fold", show=progress) as bar,
    ):
        for fit_rows, held_out in splits:
            head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, tol=1e-3))
            with warnings.catch_warnings():
                # A not fully converged fit still gives usable probabilities for ranking.
                warnings.filterwarnings("ignore", ".*failed to converge.*")
                head.fit(features[fit_rows], labels[fit_rows])
            probs[np.ix_(held_out, head.classes_)] = head.predict_proba(features[held_out])
            bar.update()
    return probs


def rank_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, method: str = DEFAULT_RANKING_METHOD
) -> tuple[np.ndarray, np.ndarray]:
    """(indices flagged by cleanlab, most likely errors first; label quality of every image)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if method not in RANKING_METHODS:
        raise UsageError(
            f"unknown ranking method {method!r}; choose from {', '.join(RANKING_METHODS)}"
        )
    ranked = find_label_issues(labels, pred_probs, return_indices_ranked_by=method, n_jobs=1)
    scores = get_label_quality_scores(labels, pred_probs, method=method)
    return np.asarray(ranked, dtype=np.int64), scores


def find_issues(
    files: LabelledFiles,
    backbone: Backbone,
    cache_dir: Path | None,
    folds: int = 5,
    seed: int = 42,
    method: str = DEFAULT_RANKING_METHOD,
    batch_size: int = INFERENCE_BATCH,
    progress: bool = True,
    device: str = "auto",
    compute: FeatureCompute | None = None,
) -> LabelIssues:
    """Features (cached; the missing ones by ``compute`` when given, e.g. on Ray) ->
    cross-validated probabilities -> cleanlab ranking."""
    if method not in RANKING_METHODS:
        raise UsageError(
            f"unknown ranking method {method!r}; choose from {', '.join(RANKING_METHODS)}"
        )
    check_folds(np.asarray(files.labels), files.class_names, folds)
    feats = image_features(files.paths, backbone, cache_dir, batch_size, progress, device, compute)
    if len(feats.kept) == 0:
        raise DataError("no readable images to rank")
    labels = np.asarray(files.labels)[feats.kept]
    check_folds(labels, files.class_names, folds)  # unreadable files may leave a class short
    probs = out_of_sample_probabilities(
        feats.features,
        labels,
        folds,
        seed,
        groups=feats.digests,
        num_classes=len(files.class_names),
        progress=progress,
    )
    ranked, scores = rank_label_issues(labels, probs, method)
    return LabelIssues(
        paths=[files.paths[i] for i in feats.kept],
        labels=labels,
        class_names=list(files.class_names),
        pred_probs=probs,
        scores=scores,
        ranked=ranked,
        method=method,
        folds=folds,
        backbone=backbone.description,
        skipped=feats.failed,
        preprocess=backbone.preprocess,
    )
