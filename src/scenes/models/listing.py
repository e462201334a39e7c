"""``scenes models [PATTERN]``: what can be given to ``--model``.

torchvision and timm can list their models offline; the Hugging Face hub cannot, so for
``hf:`` we explain the accepted ids instead of listing them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from .registry import BACKENDS, split_name

HF_NOTE = (
    "hf:ID  any Hugging Face AutoModelForImageClassification checkpoint: a hub id "
    "(e.g. hf:google/vit-base-patch16-224, hf:facebook/convnext-tiny-224; found in the "
    "Hugging Face cache when offline) or a directory written by save_pretrained "
    "(hf:/path/to/dir). Browse https://huggingface.co/models?pipeline_tag=image-classification"
)


def list_models(pattern: str | None = None) -> dict[str, list[str]]:
    """Names by backend matching a shell-style ``pattern``; a ``timm:``/``torchvision:``/``hf:``
    prefix restricts the search to that backend. Names carry the prefix ``--model`` needs
    (none for torchvision, the default backend)."""
    if pattern and ":" in pattern:
        backend, rest = split_name(pattern)
        backends, pattern = [backend], rest or "*"
    else:
        # Without a pattern the ~1,400 timm names would drown the list: ask for them by prefix.
        backends = ["torchvision", "timm"] if pattern else ["torchvision"]
    found: dict[str, list[str]] = {}
    for backend in backends:
        names = BACKENDS[backend].names()
        if backend == "timm" and pattern and "." in pattern:
            import timm

            # A tag in the pattern (convnext_tiny.*) lists the pretrained weights available.
            names = timm.list_pretrained()
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
        timm_count = len(BACKENDS["timm"].names())
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
