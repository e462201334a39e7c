"""A trained bundle as a folder for the Hugging Face Hub, uploadable as it is.

The folder is a scenes bundle (``model.json``, ``model.safetensors``, the acceptance's
reference features), so ``Predictor.load(folder)`` serves it, and at the same time what the
backbone's own library reads:

- timm backbones: the weights and ``config.json`` as timm's ``save_for_hf`` writes them (the
  architecture, label names, preprocessing), so ``timm.create_model("hf-hub:<repo>")`` (or
  ``"local-dir:<folder>"``) loads it;
- Hugging Face backbones: ``config.json`` with ``id2label`` and the weights under
  transformers' own names (``save_pretrained``), plus ``preprocessor_config.json``, so
  ``AutoModelForImageClassification.from_pretrained`` and ``AutoImageProcessor`` load it;
- torchvision backbones: a ``config.json`` describing the architecture, labels and
  preprocessing; the weights load into ``torchvision.models.<architecture>(num_classes=N)``.

``README.md`` is the model card (``card.py``); ``figures/`` holds the figures it shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..atomic import write_text
from ..errors import UsageError
from ..models.bundle import (
    ACCEPTANCE_FILE,
    META_FILE,
    WEIGHTS_FILE,
    bundle_run_dir,
    load_bundle,
    read_meta,
    resolve_bundle_dir,
)
from ..models.meta import BundleMeta
from .card import model_card

CONFIG_FILE = "config.json"
# scenes' resize modes as timm's crop modes (timm/data/transforms_factory.py)
TIMM_CROP_MODE = {"squash": "squash", "crop": "center", "pad": "border"}
OURS = {META_FILE, WEIGHTS_FILE, ACCEPTANCE_FILE, CONFIG_FILE, "README.md", "figures"}
OURS |= {"preprocessor_config.json"}


def _check_target(out: Path, directory: Path) -> None:
    """Nothing is lost: write into an empty or new folder, or over an earlier export."""
    if out.resolve() == directory.resolve() or directory.resolve() in out.resolve().parents:
        raise UsageError(f"--out {out} is the bundle's own folder; name another folder")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in OURS)
        if others:
            raise UsageError(
                f"--out {out} holds other files ({', '.join(others[:5])}); name an empty or "
                "new folder"
            )


def export_hub(run_or_bundle: str | Path, out: Path) -> Path:
    directory = resolve_bundle_dir(run_or_bundle)
    _check_target(out, directory)
    meta = read_meta(directory)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(directory / META_FILE, out / META_FILE)
    if (directory / ACCEPTANCE_FILE).is_file():
        shutil.copyfile(directory / ACCEPTANCE_FILE, out / ACCEPTANCE_FILE)
    if meta.backend == "hf":
        _write_transformers(directory, meta, out)
    elif meta.backend == "timm":
        _write_timm(directory, meta, out)
    else:
        shutil.copyfile(directory / WEIGHTS_FILE, out / WEIGHTS_FILE)
        _write_own_config(meta, out)
    run_dir = bundle_run_dir(directory)
    write_text(out / "README.md", model_card(run_dir, meta, out))
    return out


def _data_config(meta: BundleMeta) -> dict:
    return {
        "input_size": (3, meta.image_size, meta.image_size),
        "interpolation": meta.interpolation,
        "mean": tuple(meta.mean),
        "std": tuple(meta.std),
        "crop_pct": 1.0,
        "crop_mode": TIMM_CROP_MODE[meta.resize],
    }


def _write_timm(directory: Path, meta: BundleMeta, out: Path) -> None:
    """timm's own writer (weights + config.json), with the preprocessing scenes trained with
    set as the model's pretrained_cfg, which every timm 1.x writes out."""
    import torch
    from timm.models import save_for_hf

    module, _ = load_bundle(directory, "cpu")
    module = module.to(memory_format=torch.contiguous_format)  # safetensors stores contiguous
    module.pretrained_cfg = {
        **module.pretrained_cfg,
        **_data_config(meta),
        "num_classes": meta.num_classes,
        "label_names": list(meta.class_names),
    }
    save_for_hf(
        module,
        str(out),
        model_config={"label_names": list(meta.class_names)},
        safe_serialization=True,
    )


def _write_transformers(directory: Path, meta: BundleMeta, out: Path) -> None:
    from PIL import Image
    from transformers import ViTImageProcessor

    module, _ = load_bundle(directory, "cpu")
    model = module.hf  # HFLogits wraps the transformers model
    model.config.id2label = dict(enumerate(meta.class_names))
    model.config.label2id = {c: i for i, c in enumerate(meta.class_names)}
    model.save_pretrained(str(out), safe_serialization=True)  # config.json + model.safetensors
    ViTImageProcessor(
        do_resize=True,
        size={"height": meta.image_size, "width": meta.image_size},
        resample=Image.Resampling[meta.interpolation.upper()],
        image_mean=list(meta.mean),
        image_std=list(meta.std),
    ).save_pretrained(str(out))


def _write_own_config(meta: BundleMeta, out: Path) -> None:
    config = {
        "library_name": "scenes",
        "architecture": meta.model_name,
        "num_classes": meta.num_classes,
        "id2label": {str(i): c for i, c in enumerate(meta.class_names)},
        "label2id": {c: i for i, c in enumerate(meta.class_names)},
        "task": meta.task,
        "image_size": meta.image_size,
        "resize": meta.resize,
        "interpolation": meta.interpolation,
        "mean": meta.mean,
        "std": meta.std,
    }
    write_text(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
