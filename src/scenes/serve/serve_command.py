"""``scenes serve``: the run's model as an HTTP service on LitServe (FastAPI and uvicorn
underneath): ``POST /predict``, ``GET /health``, ``/info``, ``/metrics`` and ``/docs``.

Processes: this one starts LitServe, which forks one API server (HTTP, ``http_gate``) and
spawns ``--workers`` inference workers (``http_model``: one ``Predictor`` each). SIGTERM is
made a Ctrl-C here, so both end the same way: the API server stops taking connections and
finishes the requests in flight (uvicorn's graceful shutdown), then the workers are stopped.
"""

from __future__ import annotations

import logging
import os
import signal
from importlib.metadata import version

from ..errors import UsageError
from ..models.bundle import answers_digest, read_meta, resolve_bundle_dir
from .http_gate import Gate, GateOptions
from .http_model import BatchedScenesAPI, ModelOptions, ScenesAPI

log = logging.getLogger(__name__)
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe binds (it refuses other addresses)


def model_info(run: str, backend: str, tta: bool) -> dict:
    """What ``GET /info`` says of the model (read from the bundle, no network loaded)."""
    directory = resolve_bundle_dir(run)
    meta = read_meta(directory)
    return {
        "classes": meta.class_names,
        "task": meta.task,
        "digest": answers_digest(directory),
        "backend": backend,
        "tta": tta,
        "preprocessing": {
            "size": meta.image_size,
            "resize": meta.preprocess.resize,
            "interpolation": meta.preprocess.interpolation,
            "mean": list(meta.mean),
            "std": list(meta.std),
        },
        "accepts_unknown": meta.acceptance is not None,
        "scenes_version": version("scenes"),  # the installed distribution's
    }


def api_key_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise UsageError(f"--api-key-env {variable}: that environment variable is empty or unset")
    return key


def _export_first(run: str, backend: str) -> None:
    """The backend's file, exported here when missing or stale, before any worker starts:
    its mistakes (openvino not installed, no training image to calibrate on) are the user's
    to read as one line, and two workers never export the same file at once."""
    from .formats import get_format, require
    from .served_exports import current_export

    require(get_format(backend))
    current_export(resolve_bundle_dir(run), backend)


MAIN_PID = os.getpid()


def _stop(signum, frame):
    """SIGINT and SIGTERM in this process: a Ctrl-C, which LitServe answers by draining.
    Processes forked from this one inherit the handler and ignore the signal: LitServe's
    queue manager must outlive the drain (a Ctrl-C reaches the whole process group), and the
    API server, once uvicorn has drained, raises the signal again only to end, as it then
    does; this process stops them in order."""
    if os.getpid() == MAIN_PID:
        raise KeyboardInterrupt


def run_serve(
    run: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    workers: int = 2,
    threads: int | None = None,
    max_batch_size: int = 8,
    batch_timeout: float = 0.01,
    api_key_env: str | None = None,
    tta: bool = False,
    max_upload_mb: float = 20.0,
    timeout: float = 30.0,
    triton_repo: str | None = None,
) -> int:
    if triton_repo is not None:
        from .triton_repo import write_triton_repo

        log.info("wrote the Triton model repository %s", write_triton_repo(run, triton_repo))
        return 0
    import litserve as ls

    if host not in HOSTS:
        raise UsageError(f"--host {host}: LitServe binds {', '.join(HOSTS)}; choose one")
    info = model_info(run, backend, tta)
    if backend != "torch":
        _export_first(run, backend)
    gate = GateOptions(
        len(info["classes"]), int(max_upload_mb * 2**20), timeout, api_key_from(api_key_env)
    )
    kind = BatchedScenesAPI if max_batch_size > 1 else ScenesAPI
    api = kind(
        ModelOptions(str(run), backend, tta, workers, threads), max_batch_size, batch_timeout
    )
    server = ls.LitServer(
        api,
        accelerator="cpu" if backend != "torch" else "auto",
        workers_per_device=workers,
        timeout=False,  # the gate answers 503 at --timeout, for waiting and running alike
        model_metadata=info,
        middlewares=[(Gate, {"options": gate})],
    )
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "serving %s (%s) at http://%s:%d; API docs at http://%s:%d/docs",
        run,
        backend,
        shown,
        port,
        shown,
        port,
    )
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.run(
        host=host,
        port=port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
        access_log=False,
    )
    log.info("stopped: requests in flight were answered")
    return 0
