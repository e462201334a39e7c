"""Options several commands share, written once so they read alike everywhere: ``--run``,
``--device``, ``--backend``, ``--tta``, ``--batch-size``, ``--out``, and the verbosity flags
that may come before or after the subcommand."""

from __future__ import annotations

import argparse

from ..choices import BACKENDS, SPLITS
from .types import port_number, positive


def add_verbosity(p: argparse.ArgumentParser, top_level: bool = False) -> None:
    """-v, -q and --no-progress, accepted before the subcommand (``top_level``) or after it;
    on a subcommand they only overwrite what was given before it when given themselves."""
    keep = {} if top_level else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also library logs and full tracebacks", **keep
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="only results, warnings and errors", **keep
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars, also on a terminal (never shown when output is not a terminal)",
        **keep,
    )


def add_run(p: argparse.ArgumentParser, needs_run_folder: bool = False) -> None:
    what = "the run directory" if needs_run_folder else "a run directory or its model/ bundle"
    p.add_argument("--run", required=True, metavar="RUN_DIR", help=f"{what} (required)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="where the model runs: auto (a CUDA GPU when there is one, else cpu), cpu, cuda, "
        "cuda:N, mps (default: auto)",
    )


def add_backend(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="what runs the network: torch, or an exported format: onnx, onnx-int8 (ONNX "
        "Runtime), torchscript, openvino, openvino-int8 (pip install 'scenes[openvino]'); "
        f"exported first when missing or stale{note} (default: torch)",
    )


def add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tta",
        action="store_true",
        help="average each image's answer with its mirror image's (test-time augmentation)",
    )


def add_accept_all(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-all",
        action="store_true",
        help="take every photo as one of the known classes: no 'none of the known classes' "
        "(when the model has that check)",
    )


def add_batch_size(p: argparse.ArgumentParser, default: int, what: str = "images") -> None:
    p.add_argument(
        "--batch-size",
        type=positive,
        default=default,
        metavar="N",
        help=f"{what} per forward pass (default: {default})",
    )


def add_labelled_source(p: argparse.ArgumentParser) -> None:
    """The labelled images a model is measured on (evaluate, benchmark): one of three."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        metavar="DIR",
        help="a labelled folder (<class>/<images>), or a dataset root whose test folder is used "
        "(required: this, --labels or --split)",
    )
    source.add_argument(
        "--labels",
        metavar="CSV",
        help="a multi-label model's test images: a CSV of path,labels (paths relative to it) "
        "(required for such a model: this or --split)",
    )
    source.add_argument(
        "--split",
        choices=SPLITS,
        help="the run's own validation split, listed in RUN_DIR/split.csv (required: this, "
        "--data or --labels)",
    )


def add_engine(p: argparse.ArgumentParser, ray_does: str) -> None:
    """--engine local|ray and the Ray options; ``ray_does`` says what ray does for this command."""
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"local: this process; {ray_does} (pip install 'scenes[ray]'; default: local)",
    )
    p.add_argument(
        "--address",
        metavar="auto|ray://HOST:PORT",
        help="--engine ray: the cluster to join (default: start a Ray instance on this machine "
        "and stop it at the end)",
    )
    p.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="--engine ray: workers, each holding the model once (default: one per CPU, or per "
        "--gpus-per-worker share of the GPUs)",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        metavar="F",
        help="--engine ray: GPUs per worker, e.g. 1 or 0.5 (default: 0, CPU workers)",
    )


def add_page_address(p) -> None:
    """Where a Gradio page listens (``scenes app``, ``scenes review``): one definition."""
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; 0.0.0.0 serves other machines (default: 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=port_number, default=7860, help="the port to listen on (default: 7860)"
    )
    p.add_argument(
        "--share",
        action="store_true",
        help="also a public link through Gradio's share servers (needs internet)",
    )
