"""The command line's grammar: every ``scenes`` command, its options and their help.

Each command's parser names, by ``target``, the ``run_*`` function that carries it out, and
its options' names are that function's parameters (``train``'s become config overrides);
``cli/__init__.py`` does the rest. A test walks this parser: every option has help, and
every option with a value says its default.
"""

from __future__ import annotations

import argparse
from functools import partial

from .. import __version__
from .benchmark_args import add_benchmark_parser
from .common import add_verbosity
from .data_args import add_data_parser, add_models_parser, add_resize_parser
from .review_args import add_review_parser
from .run_args import (
    add_app_parser,
    add_ensemble_parser,
    add_evaluate_parser,
    add_explain_parser,
    add_export_parser,
    add_predict_parser,
    add_report_parser,
)
from .serve_args import add_serve_parser
from .train_args import add_train_parser
from .tune_args import add_compare_parser, add_tune_parser

PARSERS = [
    add_train_parser,
    add_tune_parser,
    add_compare_parser,
    add_evaluate_parser,
    add_predict_parser,
    add_app_parser,
    add_review_parser,
    add_serve_parser,
    add_export_parser,
    add_benchmark_parser,
    add_ensemble_parser,
    add_explain_parser,
    add_resize_parser,
    add_data_parser,
    add_report_parser,
    add_models_parser,
]


def _leaf(p: argparse.ArgumentParser) -> None:
    """What every subcommand's parser gets: its name for messages, and the verbosity flags."""
    add_verbosity(p)
    p.set_defaults(prog=p.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scenes", description="Train, evaluate and serve scene image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"scenes {__version__}")
    add_verbosity(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in PARSERS:
        add(sub, partial(_leaf))
    return parser


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("scenes",)):
    """(command, parser) of every command that runs something, e.g. ("scenes data check",
    ...): what the documentation and the tests walk."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    for name, child in subs[0].choices.items():
        yield from leaf_parsers(child, (*path, name))
