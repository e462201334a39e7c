"""``scenes export``: the bundle's network as ONNX, batch axis dynamic.

The graph takes the normalised float batch (B, 3, H, W) and returns logits; decoding and
normalisation stay in Python (``BundleModel``), shared with every other inference path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .inference import BundleModel
from .models.bundle import resolve_bundle_dir

ONNX_FILE = "model.onnx"
OPSET = 17


def default_onnx_path(run_or_bundle: str | Path) -> Path:
    return resolve_bundle_dir(run_or_bundle) / ONNX_FILE


def export_onnx(run_or_bundle: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out`` (default ``<bundle>/model.onnx``) and check it loads in ONNX Runtime."""
    import onnx

    model = BundleModel.load(run_or_bundle)
    out = Path(out) if out else default_onnx_path(run_or_bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = model.meta.image_size
    example = torch.zeros(2, 3, size, size)
    module = model.module.to(memory_format=torch.contiguous_format).eval()
    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter, not the user's concern
        # The TorchScript exporter writes one self-contained file (no external-data sidecar).
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(tmp))
    tmp.replace(out)
    return out


def run_export(run: str, fmt: str = "onnx", out: str | None = None) -> int:
    if fmt != "onnx":
        raise ValueError(f"unknown export format {fmt!r}; supported: onnx")
    path = export_onnx(run, out)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input 'input' "
        "(batch, 3, H, W) normalised as in model.json, output 'logits'"
    )
    return 0
