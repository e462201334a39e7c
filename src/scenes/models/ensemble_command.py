"""``scenes ensemble``: one bundle made of several runs (the network: ``ensemble.py``)."""

from __future__ import annotations

from pathlib import Path

from .ensemble import build_network, ensemble_meta
from .meta import BundleMeta


def _shared_split(runs: list[Path]) -> Path | None:
    """The members' ``split.csv`` when they all have the same one, else None: a validation
    image of one member may be a training image of another, so no honest validation split."""
    from ..rundir import SPLIT_FILE

    files = [run / SPLIT_FILE for run in runs]
    if not all(f.is_file() for f in files):
        return None
    first = files[0].read_bytes()
    return files[0] if all(f.read_bytes() == first for f in files[1:]) else None


def make_ensemble(runs: list[str | Path], out: str | Path) -> tuple[Path, BundleMeta, bool]:
    """Write the ensemble of ``runs`` (run directories or bundles) to ``out``: ``out/model/``
    and, when every member was trained on the same split, ``out/split.csv``. Returns the
    bundle folder, its description and whether the split was shared."""
    import shutil

    from pydantic import ValidationError

    from ..errors import UsageError
    from ..outputs import output_dir
    from ..rundir import BUNDLE_DIR, SPLIT_FILE
    from .bundle import (
        _describe,
        bundle_run_dir,
        load_bundle,
        read_meta,
        resolve_bundle_dir,
        save_bundle,
    )

    if len(runs) < 2:
        raise UsageError("an ensemble needs at least 2 runs")
    folder = output_dir(out)
    if (folder / BUNDLE_DIR).exists():
        raise UsageError(f"--out {folder} already holds a model/: choose a new folder")
    bundles = [resolve_bundle_dir(r) for r in runs]
    metas = [read_meta(b) for b in bundles]
    for name, meta in zip(runs, metas):
        if meta.task != "multiclass" or meta.backend == "ensemble":
            what = "an ensemble" if meta.backend == "ensemble" else "multi-label"
            raise UsageError(
                f"{name} is {what}: an ensemble's members are single multiclass models"
            )
    resizes = {m.resize for m in metas}
    if len(resizes) > 1:
        raise UsageError(
            f"the members resize photos differently ({', '.join(sorted(resizes))}): "
            "one decoded photo feeds them all; train them with one data.resize"
        )
    try:
        meta = ensemble_meta(metas)
    except ValidationError as exc:
        raise UsageError(f"these runs cannot form an ensemble:\n{_describe(exc)}") from None

    state = {}
    for i, bundle in enumerate(bundles):
        module, _ = load_bundle(bundle)
        state.update({f"members.{i}.{k}": v for k, v in module.state_dict().items()})
    network = build_network(meta)
    network.load_state_dict(state)
    target = save_bundle(network, meta, folder / BUNDLE_DIR)
    split = _shared_split([bundle_run_dir(b) for b in bundles])
    if split is not None:
        shutil.copyfile(split, folder / SPLIT_FILE)
    return target, meta, split is not None


def run_ensemble(runs: list[str], out: str) -> int:
    bundle, meta, shared = make_ensemble(runs, out)
    print(f"wrote {bundle}: an ensemble of {meta.architecture}, {meta.image_size} px")
    if shared:
        print(
            f"the members share one split: `scenes evaluate --run {Path(out)} --split val` "
            "measures the ensemble on their validation images"
        )
    else:
        print(
            "the members were not trained on one split (a validation image of one may be a "
            "training image of another): measure the ensemble on a held-out folder with "
            f"`scenes evaluate --run {Path(out)} --data DIR`"
        )
    print(
        "it answers one of the known classes for every photo: the members' acceptance of "
        "unknown photos is not carried over, and their temperatures are applied before the mean"
    )
    return 0
