"""What a command prints: our own lines, plainly; other libraries only when they warn, and
everything (once, never twice) with ``--verbose``; progress bars only on a terminal.

The CLI calls ``setup(...)`` once. Library code logs to ``scenes.*`` loggers (shown as
plain lines by the CLI, silent for a Python user who configured no logging) and raises
Python warnings (shown by the CLI as ``warning: ...`` lines, without the source file and
line that Python's default format prints).

Long stages go through ``stage``: a bar when stderr is a terminal; otherwise (a log file,
CI) no bar at all, and one line when the stage ends, with its count and time, so a log of
any command is clean text.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

_VERBOSE = False
_BARS: bool | None = None  # None: when stderr is a terminal; False: --no-progress, --quiet
# Third-party warnings about choices made on purpose, not the user's concern (unless --verbose).
LIBRARY_CHATTER = (
    ".*LeafSpec.*",  # Lightning's own deprecation
    ".*does not have many workers.*",  # 0 on CPU: the decoded cache makes loading cheap
    ".*module\\(s\\) in eval mode.*",  # a frozen backbone keeps BatchNorm in eval mode
    ".*smaller than the logging interval.*",
    ".*Checkpoint directory .* exists and is not empty.*",  # a resumed run's own folder
    ".*litlogger.*",
)

# Loggers that warn about what this machine lacks, not about the user's work: importing NNCF
# (openvino-int8 export) loads torch's C++ extension helper, which says "No CUDA runtime is
# found" on every CPU-only machine.
QUIET_LOGGERS = ("torch.utils.cpp_extension",)


@contextmanager
def without_library_chatter() -> Iterator[None]:
    """``LIBRARY_CHATTER`` silenced for a block (for Python callers of ``train``, who did not
    run ``setup``); the caller's warning filters are restored after it."""
    with warnings.catch_warnings():
        if not _VERBOSE:
            for pattern in LIBRARY_CHATTER:
                warnings.filterwarnings("ignore", pattern)
        yield


class _Console(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is when a line is logged, not to
    the one there at setup: a notebook or a test harness may replace it in between."""

    def __init__(self, which: str):
        self.which = which
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ sets it: the property decides
        pass


def setup(verbose: bool = False, quiet: bool = False, progress: bool = True) -> None:
    """Our INFO lines on stdout as they are (none with ``quiet``); other loggers' warnings on
    stderr; progress bars only on a terminal, and never with ``progress=False``."""
    global _VERBOSE, _BARS
    _VERBOSE = verbose
    _BARS = None if progress and not quiet else False
    root = logging.getLogger()
    root.handlers.clear()
    handler = _Console("stderr")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)

    ours = logging.getLogger("scenes")
    ours.handlers.clear()
    plain = _Console("stdout")
    plain.setFormatter(logging.Formatter("%(message)s"))
    ours.addHandler(plain)
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    ours.propagate = False

    # The format, not the display: a caller recording warnings (catch_warnings) still gets them.
    warnings.formatwarning = _format_warning
    if not verbose:
        for pattern in LIBRARY_CHATTER:
            warnings.filterwarnings("ignore", pattern)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


def quiet_lightning() -> None:
    """Lightning installs its own handlers when imported, which print every INFO line (GPU
    available, tips, a logging-service advertisement) and, with ours, twice. Route its
    records through the root logger instead, at our level: call after importing it."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.INFO if _VERBOSE else logging.WARNING)


def data_on_stdout() -> None:
    """A command writes its data to stdout (``--out -``): our own lines go to stderr."""
    for handler in logging.getLogger("scenes").handlers:
        if isinstance(handler, _Console):
            handler.which = "stderr"


def bars_enabled() -> bool:
    return _BARS if _BARS is not None else sys.stderr.isatty()


class Stage:
    """What ``stage`` yields: ``update(n)`` counts (and moves the bar, when there is one)."""

    def __init__(self, bar: tqdm):
        self.bar = bar
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)


@contextmanager
def stage(desc: str, total: int, unit: str = "image", show: bool = True) -> Iterator[Stage]:
    """A progress bar (``.update(n)``) on a terminal; elsewhere one line when it ends:
    ``decoding images at 150 px: 14,034 images in 41 s``. ``show=False``: neither."""
    started = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not (show and bars_enabled()))
    counter = Stage(bar)
    try:
        yield counter
    finally:
        bar.close()
    if show and not bars_enabled() and total:
        seconds = time.perf_counter() - started
        logging.getLogger("scenes.progress").info(
            "%s: %s in %s", desc, plural(counter.done, unit), duration(seconds)
        )


def duration(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3.5 min``, ``1.2 h``: short stages are not ``0.0 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 figure``, ``2 figures``, ``1,402 images``; ``many`` for irregular plurals."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def _format_warning(message, category, filename, lineno, line=None) -> str:
    where = f" ({filename}:{lineno})" if _VERBOSE else ""
    return f"warning: {message}{where}\n"
