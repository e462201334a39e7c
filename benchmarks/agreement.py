"""Where the validation errors are: how many images every run gets wrong, and what the runs'
agreement reaches, a rough estimate of how far recipes like theirs can go on this split.

    python benchmarks/agreement.py RUN RUN ... [--figure FILE]

The runs must share the validation split (data.split_seed; checked). Each bundle is measured
on it as `scenes evaluate --split val` does. Printed: each run's top-1; how many images k of
the runs get wrong, for k = 0 .. all; the top-1 of the runs' majority vote (among tied
answers, the one the earliest listed run gave) and of their averaged probabilities (an
ensemble of all of them, no bundle written). --figure draws the images that every run gets
wrong, each with its label and the runs' most common answer, so a person can judge whether
the label or the models are at fault.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from scenes import plots
from scenes.evaluation.loop import evaluate
from scenes.rundir import RunDir
from scenes.serve.predictor import Predictor

from _common import use_offline_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    parser.add_argument("--figure", type=Path, help="grid of the images every run gets wrong")
    args = parser.parse_args()
    use_offline_weights()
    if len({RunDir(r).split_csv.read_bytes() for r in args.runs}) > 1:
        raise SystemExit("the runs were not trained on one split: no shared validation images")

    results = [evaluate(run, split="val", out=False, device="cpu") for run in args.runs]
    names = results[0].class_names
    paths = [row["path"] for row in results[0].predictions]
    for result in results[1:]:
        if [row["path"] for row in result.predictions] != paths or result.class_names != names:
            raise SystemExit("the runs answered different images or classes")
    truth = np.array([names.index(row["true"]) for row in results[0].predictions])
    answers = np.stack([r.probs.argmax(axis=1) for r in results])  # (runs, images)
    wrong = answers != truth
    for run, result in zip(args.runs, results):
        print(f"{run}: top-1 {result.accuracy:.2%}")

    count = len(paths)
    misses = wrong.sum(axis=0)
    print(f"\n{count} validation images; how many of the {len(results)} runs get each wrong:")
    print("| runs wrong | images | share |\n|---|---|---|")
    for k in range(len(results) + 1):
        print(f"| {k} | {(misses == k).sum()} | {(misses == k).mean():.2%} |")
    votes = np.array([Counter(column).most_common(1)[0][0] for column in answers.T])
    averaged = np.mean([r.probs for r in results], axis=0).argmax(axis=1)
    print(f"\nwrong for every run: {(misses == len(results)).mean():.2%} of the images")
    print(f"majority vote: top-1 {(votes == truth).mean():.2%}")
    print(
        f"averaged probabilities (all runs as one ensemble): top-1 {(averaged == truth).mean():.2%}"
    )

    if args.figure:
        lost = np.flatnonzero(misses == len(results))
        model = Predictor.load(args.runs[0], device="cpu", accept_all=True)
        images = [model.load_image(paths[i]) for i in lost]
        captions = [f"label {names[truth[i]]}\nruns say {names[votes[i]]}" for i in lost]
        title = f"Validation images all {len(results)} runs get wrong ({len(lost)} of {count})"
        print(f"wrote {plots.plot_image_grid(images, captions, args.figure, title, columns=6)}")


if __name__ == "__main__":
    main()
