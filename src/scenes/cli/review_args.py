"""The options of ``scenes review``."""

from __future__ import annotations

from .common import add_device, add_page_address, add_run

QUEUES = ("issues", "mistakes", "uncertain")  # scenes.review.queues.QUEUES, without its imports


def add_review_parser(sub, common) -> None:
    p = sub.add_parser(
        "review",
        help="fix labels in the browser: keep, relabel or exclude queued photos from the keyboard",
        description="A Gradio page showing one queued photo at a time with its label, the "
        "model's top classes and heatmap; every decision is saved at once to "
        "RUN_DIR/review/decisions.csv, and reopening resumes where you left off. The data "
        "folder is never modified.",
    )
    common(p)
    add_run(p)
    p.add_argument(
        "--queue",
        choices=QUEUES,
        default="issues",
        help="issues: the suspects of `scenes data issues` (computed when missing); mistakes: "
        "the confident errors of `scenes evaluate`; uncertain: a selection of `scenes data "
        "select` (default: issues)",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="issues: the labelled folder whose ranking is RUN_DIR/label_issues/<its name>/ "
        "(default: the one ranking there)",
    )
    p.add_argument(
        "--predictions",
        metavar="CSV",
        help="mistakes: an evaluation's predictions.csv (default: the newest in RUN_DIR/eval/)",
    )
    p.add_argument(
        "--selection",
        metavar="CSV",
        help="uncertain: the CSV `scenes data select` wrote (required with --queue uncertain)",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="review only the queued photos that are these files or inside these folders",
    )
    p.add_argument(
        "--near",
        metavar="DIR",
        help="show each queued photo's near-duplicates in this labelled folder, with their "
        "labels (the test of `scenes data check --near`; the folder is embedded once, cached; "
        "default: none, near-duplicates are not looked for)",
    )
    add_page_address(p)
    add_device(p)
    p.set_defaults(target=".review.command:run_review")
