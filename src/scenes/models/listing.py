"""``scenes models [PATTERN]``: what can be given to ``--model``.

torchvision and timm can list their models offline; the Hugging Face hub cannot, so for
``hf:`` we explain the accepted ids instead of listing them. Listing needs torchvision or timm
imported (several seconds, mostly torch itself), so the names are kept in the cache, one file
per installed version of each package: after the first call, ``scenes models`` imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fnmatch import fnmatchcase
from importlib.metadata import version

from ..atomic import write_text
from ..cache_folders import MODEL_NAMES
from ..config import default_cache_dir
from ..errors import UsageError

BACKEND_NAMES = ("torchvision", "timm", "hf")
HF_NOTE = (
    "hf:ID  any Hugging Face AutoModelForImageClassification checkpoint: a hub id "
    "(e.g. hf:google/vit-base-patch16-224, hf:facebook/convnext-tiny-224; found in the "
    "Hugging Face cache when offline) or a directory written by save_pretrained "
    "(hf:/path/to/dir). Browse https://huggingface.co/models?pipeline_tag=image-classification"
)


def _split_pattern(pattern: str) -> tuple[str, str]:
    """``timm:convnext*`` -> ("timm", "convnext*"), checked like ``--model`` names are."""
    backend, _, rest = pattern.partition(":")
    if backend not in BACKEND_NAMES:
        raise UsageError(
            f"unknown model backend {backend!r} in {pattern!r}; available: "
            f"{', '.join(BACKEND_NAMES)}"
        )
    return backend, rest


def _registry_names(backend: str) -> list[str]:
    from .registry import BACKENDS

    return BACKENDS[backend].names()


def _timm_pretrained() -> list[str]:
    import timm

    return timm.list_pretrained()


def cached_names(kind: str, package: str, compute: Callable[[], list[str]]) -> list[str]:
    """``compute()``, kept in ``<cache>/model-names/<kind>-<package version>.json``."""
    path = default_cache_dir() / MODEL_NAMES / f"{kind}-{version(package)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    names = compute()
    try:
        write_text(path, json.dumps(names))
    except OSError:  # a read-only cache only costs speed
        pass
    return names


def backend_names(backend: str) -> list[str]:
    return cached_names(backend, backend, lambda: _registry_names(backend))


def list_models(pattern: str | None = None) -> dict[str, list[str]]:
    """Names by backend matching a shell-style ``pattern``; a ``timm:``/``torchvision:``/``hf:``
    prefix restricts the search to that backend. Names carry the prefix ``--model`` needs
    (none for torchvision, the default backend)."""
    if pattern and ":" in pattern:
        backend, rest = _split_pattern(pattern)
        backends, pattern = [backend], rest or "*"
    else:
        # Without a pattern the ~1,400 timm names would drown the list: ask for them by prefix.
        backends = ["torchvision", "timm"] if pattern else ["torchvision"]
    found: dict[str, list[str]] = {}
    for backend in backends:
        names = backend_names(backend) if backend != "hf" else []
        if backend == "timm" and pattern and "." in pattern:
            # A tag in the pattern (convnext_tiny.*) lists the pretrained weights available.
            names = cached_names("timm-pretrained", "timm", _timm_pretrained)
        matched = [n for n in names if fnmatchcase(n, pattern or "*")]
        prefix = "" if backend == "torchvision" else f"{backend}:"
        found[backend] = [prefix + n for n in matched]
    return found


def run_models(pattern: str | None = None) -> int:
    """Print the names; exit code 1 when the pattern matches nothing."""
    found = list_models(pattern)
    total = 0
    for backend, names in found.items():
        if backend == "hf":
            continue
        total += len(names)
        if names:
            print(f"{backend} ({len(names)}):")
            for name in names:
                print(f"  {name}")
    if pattern is None:
        timm_count = len(backend_names("timm"))
        print(
            f"timm ({timm_count}): list them with `scenes models 'timm:*'` or a pattern such as "
            "`scenes models 'timm:convnext*'`; pick weights with a tag: "
            "`scenes models 'timm:convnext_tiny.*'`"
        )
    print(HF_NOTE)
    if pattern is not None and total == 0 and "hf" not in found:
        print(f"no model matches {pattern!r}")
        return 1
    return 0
