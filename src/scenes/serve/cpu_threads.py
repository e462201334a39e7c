"""How many CPU threads one inference process uses: its share of the cores.

Each of PyTorch, ONNX Runtime and OpenVINO starts as many compute threads as there are cores.
Two `scenes serve` workers on a 2-core machine then run 4 threads on 2 cores and thrash: in
benchmarks/serve_load.py two such workers answered a fifth of one worker's images/s at
concurrency 32, with a p99 seven times longer. A process that shares the machine sets its share once (``limit``) before it loads a
model; the runners read it (``share``) when they create their sessions.
"""

from __future__ import annotations

import os

_share: int | None = None  # None: each library's own default (every core)


def cores() -> int:
    """The cores this process may run on (its affinity, which a container may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit(processes: int, threads: int | None = None) -> int:
    """Give this process ``threads`` compute threads, by default 1/``processes`` of the cores
    (at least one); the count."""
    global _share
    import torch

    _share = threads or max(1, cores() // max(1, processes))
    torch.set_num_threads(_share)
    return _share


def share() -> int | None:
    return _share
