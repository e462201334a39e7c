"""What every ``--engine ray`` job shares: the options, the Ray instance, the actor pool.

A job lists its files once, here, and hands Ray Data their paths with their index in that list.
A pool of actors (one per CPU, or per GPU share) each builds its model once and answers a batch
of paths with a batch of rows that carry the index back, so the caller can put the answers in
the order of its list whatever order they come in. Blocks stream back to this process as they
are done. Ray Data restarts a killed actor and retries its batch (its defaults for actor pools;
setting them here goes through ``ray_remote_args``, which Ray deprecates), so a lost worker
costs time, not rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class RayEngine:
    """Where a job runs: ``address`` None starts a Ray instance on this machine for the job."""

    address: str | None = None
    workers: int | None = None  # None: one per CPU, or per ``gpus_per_worker`` share of GPUs
    gpus_per_worker: float = 0.0
    # Decode on CPU workers of their own, ahead of the model's workers (None: when these are
    # on GPUs, which would otherwise wait while their worker decodes on one core).
    split_decoding: bool | None = None

    @property
    def decode_apart(self) -> bool:
        if self.split_decoding is None:
            return self.gpus_per_worker > 0
        return self.split_decoding


def engine_from_options(
    engine: str, address: str | None, workers: int | None, gpus_per_worker: float
) -> RayEngine | None:
    """The command line's ``--engine`` and its options: a RayEngine, or None for local."""
    if engine == "ray":
        if gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}")
        return RayEngine(address, workers, gpus_per_worker)
    if address or workers or gpus_per_worker:
        raise UsageError("--address, --workers and --gpus-per-worker are for --engine ray")
    return None


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray Data: pip install 'scenes[ray]' (or use --engine local)"
        ) from None
    return ray


@contextmanager
def ray_session(engine: RayEngine) -> Iterator:
    """Ray, joined at ``engine.address`` or started here (and stopped at the end)."""
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=engine.address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own bar counts rows as they arrive
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def export_for_workers(run: str | Path, backend: str) -> str | None:
    """``backend``'s file, exported here (when missing or made from other weights) once,
    before any worker starts; the workers only load it (``load_in_worker``). Were each to
    export, 8 workers would calibrate int8 8 times at once and race on the same files. None
    for the torch backend, which has no file."""
    if backend == "torch":
        return None
    from ..models.bundle import resolve_bundle_dir
    from .formats import get_format, require
    from .served_exports import current_export

    require(get_format(backend))
    return str(current_export(resolve_bundle_dir(run), backend))


def load_in_worker(run: str, backend: str, device: str, accept_all: bool, export_path: str | None):
    """A worker's Predictor, loaded only: the file ``export_for_workers`` made; one that is
    missing or stale is refused (``StaleExportError``), never exported again here."""
    from .predictor import Predictor

    if backend != "torch" and export_path is None:
        raise ValueError(f"a Ray worker loads the {backend} file its driver exported: none given")
    return Predictor.load(
        run, backend=backend, device=device, accept_all=accept_all, export_path=export_path
    )


def fetched(value):
    """An actor's argument: the object behind a reference put in Ray's store, or the value."""
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def pool_size(ray, engine: RayEngine) -> int:
    if engine.workers:
        return engine.workers
    resources = ray.cluster_resources()
    if engine.gpus_per_worker == 0:
        return max(1, int(resources.get("CPU", 1)))
    return max(1, int(resources.get("GPU", 0) / engine.gpus_per_worker))


def decoder_count(ray, engine: RayEngine) -> int:
    """The CPUs the model's workers leave free: each decoder holds one."""
    taken = pool_size(ray, engine) if engine.gpus_per_worker == 0 else 0
    return max(1, int(ray.cluster_resources().get("CPU", 1)) - taken)


def map_paths(
    ray,
    paths: list[Path],
    actor: type,
    arguments: dict,
    batch_size: int,
    engine: RayEngine,
    before: tuple[type, dict] | None = None,
) -> Iterator[dict]:
    """Blocks (dicts of numpy columns) of ``actor(**arguments)(batch)`` over ``paths``; each
    batch in has the columns ``index`` (into ``paths``) and ``path``. ``before`` is another
    (actor, arguments) whose batches go to ``actor`` instead, on a pool of one-CPU workers
    of its own (the decoding, ahead of GPU workers)."""
    ds = ray.data.from_items([{"index": i, "path": str(p)} for i, p in enumerate(paths)])
    if before is not None:
        ds = ds.map_batches(
            before[0],
            fn_constructor_kwargs=before[1],
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=decoder_count(ray, engine)),
            num_cpus=1,
        )
    answered = ds.map_batches(
        actor,
        fn_constructor_kwargs=arguments,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool_size(ray, engine)),
        num_cpus=1 if engine.gpus_per_worker == 0 else 0,
        num_gpus=engine.gpus_per_worker,
    )
    yield from answered.iter_batches(batch_size=None, batch_format="numpy")
