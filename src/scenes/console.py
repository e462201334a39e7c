"""What a command prints: our own lines, plainly; other libraries only when they warn, and
everything (once, never twice) with ``--verbose``.

The CLI calls ``setup(verbose)`` once. Library code logs to ``scenes.*`` loggers (shown as
plain lines by the CLI, silent for a Python user who configured no logging) and raises
Python warnings (shown by the CLI as ``warning: ...`` lines, without the source file and
line that Python's default format prints).
"""

from __future__ import annotations

import logging
import sys
import warnings

_VERBOSE = False
# Third-party chatter that is not the user's concern (unless --verbose).
_QUIET_WARNINGS = (
    ".*LeafSpec.*",
    ".*does not have many workers.*",
    ".*module\\(s\\) in eval mode.*",
    ".*smaller than the logging interval.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*litlogger.*",
)


def setup(verbose: bool = False) -> None:
    """Our INFO lines on stdout as they are; other loggers' warnings on stderr."""
    global _VERBOSE
    _VERBOSE = verbose
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)

    ours = logging.getLogger("scenes")
    ours.handlers.clear()
    plain = logging.StreamHandler(sys.stdout)
    plain.setFormatter(logging.Formatter("%(message)s"))
    ours.addHandler(plain)
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    ours.propagate = False

    # The format, not the display: a caller recording warnings (catch_warnings) still gets them.
    warnings.formatwarning = _format_warning
    if not verbose:
        for pattern in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", pattern)


def quiet_lightning() -> None:
    """Lightning installs its own handlers when imported, which print every INFO line (GPU
    available, tips, a logging-service advertisement) and, with ours, twice. Route its
    records through the root logger instead, at our level: call after importing it."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.INFO if _VERBOSE else logging.WARNING)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 figure``, ``2 figures``, ``1,402 images``; ``many`` for irregular plurals."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def _format_warning(message, category, filename, lineno, line=None) -> str:
    where = f" ({filename}:{lineno})" if _VERBOSE else ""
    return f"warning: {message}{where}\n"
