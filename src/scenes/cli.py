"""Command line: parse arguments (grammar in ``arguments.py``) and delegate. No logic lives here."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .arguments import build_parser

__all__ = ["build_parser", "dispatch", "main"]


def _train_overrides(args: argparse.Namespace) -> dict:
    mapping = {
        "data.dir": args.data,
        "model.name": args.model,
        "train.epochs": args.epochs,
        "data.image_size": args.image_size,
        "data.batch_size": args.batch_size,
        "train.lr": args.lr,
        "model.weights_file": args.weights,
        "out": args.out,
        "train.accelerator": args.accelerator,
        "train.devices": args.devices,
        "train.num_nodes": args.num_nodes,
        "train.strategy": args.strategy,
    }
    overrides = {k: v for k, v in mapping.items() if v is not None}
    if args.no_pretrained:
        overrides["model.pretrained"] = False
    if args.freeze_backbone:
        overrides["train.mode"] = "head"
    return overrides


def _call(target: str, **kwargs) -> int:
    """Import the command's module only when it runs: `scenes --help` stays fast."""
    module_name, func = target.split(":")
    module = importlib.import_module(module_name, package=__package__)
    return int(getattr(module, func)(**kwargs) or 0)


# Arguments that steer the parser, not the command's function.
NOT_PASSED = {"command", "data_command", "verbose", "target"}


def dispatch(args: argparse.Namespace) -> int:
    """Call the command's ``run_*`` function (named by its parser) with the parsed options,
    whose names are its parameters; ``train`` turns its flags into config overrides first."""
    if args.command == "train":
        return _call(
            ".training.command:run_train",
            config_path=args.config,
            overrides=_train_overrides(args),
            sets=args.sets,
            resume=args.resume,
        )
    options = {k: v for k, v in vars(args).items() if k not in NOT_PASSED}
    return _call(args.target, **options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import console
    from .errors import USER_ERRORS

    console.setup(args.verbose)

    try:
        return dispatch(args)
    except USER_ERRORS as exc:
        if args.verbose:
            raise
        print(f"scenes {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nscenes {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # Not a mistake of the user's: a bug, or the machine failing. The traceback is what a
        # report needs, so it is shown whole.
        traceback.print_exc()
        print(
            f"scenes {args.command}: internal error (the traceback above says where); "
            "this is a bug in scenes unless the machine failed: please report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
