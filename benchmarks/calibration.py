"""Does temperature scaling make confidence mean what it says on photos it was not fitted on?

    python benchmarks/calibration.py --run RUN [--folds 2] [--seed 0]

Training fits the bundle's temperature on the whole validation split, so the calibration error
`scenes evaluate --split val` reports after it is measured on the images it was fitted on.
This measures it honestly: the validation split (the run's own, from split.csv) is cut into
--folds stratified parts; for each part, the temperature is fitted (the same fit_temperature
training uses) on the other parts and the expected calibration error (15 bins) is measured on
this one, before and after. Prints each fold and the mean.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.model_selection import StratifiedKFold

from scenes.evaluation.loop import evaluate
from scenes.metrics import expected_calibration_error
from scenes.models.probabilities import softmax
from scenes.training.calibrate import fit_temperature

from _common import use_offline_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_offline_weights()
    found = evaluate(args.run, split="val", out=False, device="cpu")
    logits = found.logits
    labels = np.asarray([found.class_names.index(p["true"]) for p in found.predictions])
    print(
        f"{len(labels)} validation images; the bundle's temperature {found.temperature:.3f} "
        f"(fitted on all of them): ECE {found.ece_uncalibrated:.4f} -> {found.ece:.4f} in-sample"
    )
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    rows = []
    for i, (fit, held) in enumerate(folds.split(logits, labels), start=1):
        t = fit_temperature(logits[fit], labels[fit])
        before = expected_calibration_error(softmax(logits[held]), labels[held])
        after = expected_calibration_error(softmax(logits[held] / t), labels[held])
        rows.append((t, before, after))
        print(
            f"fold {i}: T = {t:.3f} fitted on {len(fit)}, ECE on {len(held)}: "
            f"{before:.4f} -> {after:.4f}"
        )
    t, before, after = np.mean(rows, axis=0)
    print(f"\nmean of {args.folds} folds: T = {t:.3f}, held-out ECE {before:.4f} -> {after:.4f}")


if __name__ == "__main__":
    main()
