"""``scenes export``: the bundle's network as ONNX, batch axis dynamic.

The graph takes the normalised float batch (B, 3, H, W) and returns logits; decoding and
normalisation stay in Python (``Predictor``, which exports through this module), shared with
every other inference path.
The exported file records the SHA-256 of the ``model.safetensors`` it was made from, so a
bundle rewritten later (a resumed run) is never served through a stale graph.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..data.files import file_sha256
from ..errors import UsageError
from ..models.bundle import WEIGHTS_FILE, load_bundle, resolve_bundle_dir
from ..outputs import output_file

ONNX_FILE = "model.onnx"
OPSET = 17
WEIGHTS_DIGEST_KEY = "scenes.weights_sha256"
# 2: a second output, the penultimate features (the acceptance of unknown photos needs them)
EXPORT_VERSION_KEY, EXPORT_VERSION = "scenes.export_version", "2"


class StaleExportError(UsageError):
    """An ONNX file was exported from other weights than the bundle's current ones."""


def default_onnx_path(run_or_bundle: str | Path) -> Path:
    return resolve_bundle_dir(run_or_bundle) / ONNX_FILE


def weights_digest(run_or_bundle: str | Path) -> str:
    """SHA-256 of the bundle's ``model.safetensors``: what an export is made from."""
    return file_sha256(resolve_bundle_dir(run_or_bundle) / WEIGHTS_FILE)


def recorded(onnx_path: str | Path) -> dict[str, str]:
    """The metadata an ONNX file records (empty for a file exported by other tools)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def recorded_digest(onnx_path: str | Path) -> str | None:
    """The weights digest an ONNX file records (None for a file exported by other tools)."""
    return recorded(onnx_path).get(WEIGHTS_DIGEST_KEY)


def is_current(onnx_path: str | Path, run_or_bundle: str | Path) -> bool:
    """Made from the bundle's current weights, by this version of the export."""
    if not Path(onnx_path).is_file():
        return False
    found = recorded(onnx_path)
    return (
        found.get(WEIGHTS_DIGEST_KEY) == weights_digest(run_or_bundle)
        and found.get(EXPORT_VERSION_KEY) == EXPORT_VERSION
    )


def export_onnx(run_or_bundle: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out`` (default ``<bundle>/model.onnx``) and check it loads in ONNX Runtime."""
    import onnx
    import torch

    from ..models.base import WithFeatures

    directory = resolve_bundle_dir(run_or_bundle)
    module, meta = load_bundle(directory, "cpu")
    out = Path(out) if out else default_onnx_path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, meta.image_size, meta.image_size)
    module = module.to(memory_format=torch.contiguous_format).eval()
    module = WithFeatures(module, meta.head).eval()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter deprecation chatter, not the user's concern
            # The TorchScript exporter writes one self-contained file (no external-data sidecar).
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=["input"],
                output_names=["logits", "features"],
                dynamic_axes={
                    "input": {0: "batch"},
                    "logits": {0: "batch"},
                    "features": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        graph = onnx.load(str(tmp))
        onnx.helper.set_model_props(
            graph,
            {WEIGHTS_DIGEST_KEY: weights_digest(directory), EXPORT_VERSION_KEY: EXPORT_VERSION},
        )
        onnx.save(graph, str(tmp))
        onnx.checker.check_model(str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # an interrupted or failed export leaves nothing behind
    return out


def run_export(run: str, fmt: str = "onnx", out: str | None = None) -> int:
    if fmt != "onnx":
        raise UsageError(f"unknown export format {fmt!r}; supported: onnx")
    if out is not None:
        output_file(out, example=ONNX_FILE)
    path = export_onnx(run, out)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input 'input' "
        "(batch, 3, H, W) normalised as in model.json, outputs 'logits' and 'features'"
    )
    return 0
