"""ONNX files: fp32 (opset 17, batch axis dynamic) and int8.

int8 is ONNX Runtime's static post-training quantisation in QDQ format with per-channel
weights (signed int8 weights, unsigned int8 activations: the CPU kernels' fast path),
calibrated on images of the run's own training split. Weights other than depthwise
convolutions' have 7 bits (``_depthwise_at_eight_bits``), so the file answers alike on every
x86 CPU. The fp32 graph is pre-processed first (``quant_pre_process``: shape inference and
graph optimisation), as ONNX Runtime recommends.
The stamp is kept in the model's metadata properties.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from ...atomic import replacing_path
from ...models.bundle import load_bundle
from ...models.meta import BundleMeta

OPSET = 17


def read_stamp(path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def write(directory: Path, out: Path, stamp: dict, fmt: str, calibration: int, seed: int) -> None:
    # written beside ``out`` and renamed into place whole; a failed export leaves nothing
    with replacing_path(out) as tmp:
        if fmt == "onnx":
            write_fp32(directory, tmp)
        else:
            write_int8(directory, tmp, calibration, seed)
        _stamp_and_check(tmp, stamp)


def write_fp32(directory: Path, out: Path) -> None:
    import torch

    from ...models.base import WithFeatures

    module, meta = load_bundle(directory, "cpu")
    example = torch.zeros(2, 3, meta.image_size, meta.image_size)
    module = module.to(memory_format=torch.contiguous_format).eval()
    module = WithFeatures(module, meta.head).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter, not the user's concern
        # The TorchScript exporter writes one self-contained file (no external-data sidecar).
        torch.onnx.export(
            module,
            (example,),
            str(out),
            input_names=["input"],
            output_names=["logits", "features"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


class _Batches:
    """ONNX Runtime's CalibrationDataReader over normalised calibration batches."""

    def __init__(self, batches: list[np.ndarray]):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch}


def calibration_batches(
    directory: Path, meta: BundleMeta, count: int, seed: int, batch: int = 16
) -> list[np.ndarray]:
    from ..pixels import normalize
    from .int8_sample import calibration_images

    images = calibration_images(directory, meta, count, seed)
    return [normalize(images[i : i + batch], meta) for i in range(0, len(images), batch)]


def write_int8(directory: Path, out: Path, calibration: int, seed: int) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ...models.bundle import read_meta

    meta = read_meta(directory)
    batches = calibration_batches(directory, meta, calibration, seed)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        write_fp32(directory, fp32)
        quant_pre_process(str(fp32), str(prepared))
        overrides = _depthwise_at_eight_bits(prepared)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(prepared),
                str(out),
                _Batches(batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,  # 7-bit weights (see _depthwise_at_eight_bits)
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"TensorQuantOverrides": overrides},
            )


def _depthwise_at_eight_bits(graph_path: Path) -> dict[str, list[dict]]:
    """ONNX Runtime's overrides that keep depthwise convolutions' weights at 8 bits while
    ``reduce_range`` quantises every other weight to 7.

    Without VNNI (x86 with AVX2 only) ONNX Runtime multiplies uint8 activations by int8 weights
    with an instruction that adds pairs of products in 16 bits, which saturate with 8-bit weights
    (255 x 127 x 2 > 32767); its documentation's remedy is 7-bit weights. On such a CPU 6.5% of
    a test model's photos changed their top class against PyTorch. 7-bit weights keep the sums
    exact there, and a VNNI CPU computes the same integers, so the file answers alike on both.
    Depthwise kernels add in 32 bits, so theirs keep 8 bits (at 7 the flips rose from 3.0% to
    3.6% of 4,800 photos, from precision alone: a one-off comparison on test_formats' model,
    not a kept benchmark). NNCF's overflow fix makes the same choice."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    in_per_group = {t.name: t.dims[1] for t in graph.initializer if len(t.dims) == 4}
    overrides = {}
    for node in (n for n in graph.node if n.op_type == "Conv"):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = node.input[1]
        if group > 1 and in_per_group.get(weight) == 1:  # one input channel per group: depthwise
            overrides[weight] = [{"axis": 0, "reduce_range": False}]
    return overrides


def _stamp_and_check(path: Path, stamp: dict) -> None:
    import onnx

    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, stamp)
    onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))
