"""Command line: parse arguments and delegate. No logic lives here."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune an ImageNet-pretrained model",
        description="Fine-tune a classifier; flags override the config file, --set any field.",
    )
    p.add_argument("--config", help="YAML recipe (e.g. configs/mobilenet_v2_cpu.yaml)")
    p.add_argument("--data", help="dataset folder (default: $SCENES_DATA or data/intel)")
    p.add_argument("--model", help="model name, e.g. resnet50, mobilenet_v2")
    p.add_argument("--epochs", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="FILE", help="start from a local state-dict file")
    weights.add_argument("--no-pretrained", action="store_true", help="random initialisation")
    p.add_argument("--freeze-backbone", action="store_true", help="train the head only")
    p.add_argument("--resume", metavar="CKPT", help="continue a run from its checkpoint")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<model>-<time>)")
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="override any config field, e.g. --set train.scheduler=step (repeatable)",
    )


def _data_parser(sub) -> None:
    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download Intel Image Classification with kagglehub")
    d.add_argument("--dest", default=None, help="target folder (default: $SCENES_DATA or data/intel)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scenes", description="Train, evaluate and serve scene image classifiers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _data_parser(sub)
    return parser


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
    }
    overrides = {k: v for k, v in mapping.items() if v is not None}
    if args.no_pretrained:
        overrides["model.pretrained"] = False
    if args.freeze_backbone:
        overrides["train.mode"] = "head"
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from .commands import run_train

    return run_train(args.config, _train_overrides(args), args.sets, args.resume)


def cmd_data(args: argparse.Namespace) -> int:
    from .commands import run_data_download

    if args.data_command == "download":
        return run_data_download(args.dest)
    return 2


COMMANDS = {"train": cmd_train, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Lightning's banners (GPU available..., tips) are noise for a CLI user.
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from .errors import USER_ERRORS

    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"scenes {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nscenes {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
