"""The options of ``scenes serve``: the run's model as an HTTP service."""

from __future__ import annotations

from .common import add_backend, add_run, add_tta
from .types import non_negative_float, port_number, positive, positive_float


def add_serve_parser(sub, common) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP inference service: POST /predict, /health, /info, /metrics (LitServe)",
        description="Serve the run's model over HTTP with dynamic batching, limits, an optional "
        "API key and Prometheus metrics; answers equal scenes predict's. Ctrl-C or SIGTERM "
        "answers the requests in flight, then exits 0.",
    )
    common(p)
    add_run(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "0.0.0.0", "::"],
        help="the address to listen on; 0.0.0.0 serves other machines (default: 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=port_number, default=8000, help="the port to listen on (default: 8000)"
    )
    add_backend(p)
    p.add_argument(
        "--workers",
        type=positive,
        default=2,
        metavar="N",
        help="inference worker processes, each with its own copy of the model (default: 2, "
        "the fastest measured on 2 cores: docs/results.md)",
    )
    p.add_argument(
        "--threads",
        type=positive,
        metavar="N",
        help="compute threads of each worker on the CPU (default: the cores shared among the "
        "workers)",
    )
    p.add_argument(
        "--max-batch-size",
        type=positive,
        default=8,
        metavar="B",
        help="requests a worker answers in one network call (default: 8; 1: no batching)",
    )
    p.add_argument(
        "--batch-timeout",
        type=non_negative_float,
        default=0.01,
        metavar="S",
        help="seconds a worker waits to fill a batch (default: 0.01)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer KEY' on every endpoint, KEY read from this "
        "environment variable (default: no key)",
    )
    add_tta(p)
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=20.0,
        metavar="MB",
        help="the largest request body accepted, 413 over it (default: 20)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="a request not answered within this many seconds gets a 503 (default: 30)",
    )
    p.add_argument(
        "--triton-repo",
        metavar="DIR",
        help="instead of serving: write a Triton Inference Server model repository (the ONNX "
        "graph, config.pbtxt with dynamic batching, labels.txt) to DIR and exit (default: serve)",
    )
    p.set_defaults(target=".serve.serve_command:run_serve")
