"""Command line: parse arguments (grammar in ``parser.py``) and delegate. No logic lives here.

Exit codes: 0 done; 1 done, but something was found or failed (``data check`` problems,
unreadable files in ``predict`` or ``resize``), or a bug (its traceback is shown); 2 a
mistake in what was asked (the message says what to do); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .parser import build_parser
from .train_args import train_options
from .tune_args import tune_options

__all__ = ["build_parser", "dispatch", "main"]

# Arguments that steer the parser or the console, not the command's function.
NOT_PASSED = {"command", "data_command", "verbose", "quiet", "progress", "target", "prog"}


def _call(target: str, **kwargs) -> int:
    """Import the command's module only when it runs: `scenes --help` stays fast."""
    module_name, func = target.split(":")
    module = importlib.import_module(module_name, package="scenes")
    return int(getattr(module, func)(**kwargs) or 0)


def dispatch(args: argparse.Namespace) -> int:
    """Call the command's ``run_*`` function (named by its parser) with the parsed options,
    whose names are its parameters; ``train`` and ``tune`` turn their recipe flags into
    config overrides first."""
    if args.command == "train":
        return _call(args.target, **train_options(args))
    if args.command == "tune":
        return _call(args.target, **tune_options(args, NOT_PASSED))
    options = {k: v for k, v in vars(args).items() if k not in NOT_PASSED}
    return _call(args.target, **options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .. import console
    from ..errors import USER_ERRORS

    console.setup(args.verbose, args.quiet, args.progress)
    name = getattr(args, "prog", f"scenes {args.command}")
    try:
        return dispatch(args)
    except USER_ERRORS as exc:
        if args.verbose:
            raise
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # Not a mistake of the user's: a bug, or the machine failing. The traceback is what a
        # report needs, so it is shown whole.
        traceback.print_exc()
        print(
            f"{name}: internal error (the traceback above says where); "
            "this is a bug in scenes unless the machine failed: please report it",
            file=sys.stderr,
        )
        return 1
