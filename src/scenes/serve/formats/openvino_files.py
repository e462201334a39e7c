"""OpenVINO IR (``model.xml`` + ``model.bin``): converted from the fp32 ONNX export (one tracing
path for every graph format), fp32 weights kept (no fp16 compression: the one-answer tolerance
is fp32's); ``openvino-int8`` is NNCF's post-training quantisation of that model, calibrated on
the run's training images as ``onnx-int8`` is. The stamp is kept in the model's runtime
information (``rt_info``, section ``scenes``). An optional extra: ``pip install
'scenes[openvino]'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

from ...atomic import move_into_place

SECTION = "scenes"


def _telemetry_off() -> None:
    # OpenVINO's tools may try to send usage statistics; a scenes user never agreed to that.
    os.environ.setdefault("OPENVINO_TELEMETRY_OPTOUT", "1")


def read_stamp(path: Path) -> dict[str, str]:
    _telemetry_off()
    import openvino as ov

    model = ov.Core().read_model(str(path))
    if not model.has_rt_info([SECTION]):
        return {}
    info = model.get_rt_info([SECTION]).value  # {"weights_sha256": "...", ...}
    return {f"{SECTION}.{k}": str(v) for k, v in dict(info).items()}


def write(directory: Path, out: Path, stamp: dict, fmt: str, calibration: int, seed: int) -> None:
    """The IR (``out`` and its ``.bin``), made and checked to load in a hidden folder beside
    ``out``, then renamed into place, the weights first (a reader keys on the ``.xml``). The
    format's own folder (``openvino/``) is published whole by ``formats.export``."""
    _telemetry_off()
    import openvino as ov

    from .onnx_files import write_fp32

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        write_fp32(directory, fp32)
        model = ov.convert_model(str(fp32))
        if fmt == "openvino-int8":
            model = _quantize(model, directory, calibration, seed)
        for key, value in stamp.items():  # "scenes.x" -> rt_info scenes/x ("." is a path there)
            model.set_rt_info(str(value), [SECTION, key.split(".", 1)[1]])
        staged = Path(tmp) / out.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        compile_model(staged, "cpu")  # it loads, or the export fails here
        for suffix in (".bin", ".xml"):
            move_into_place(staged.with_suffix(suffix), out.with_suffix(suffix))


def _quantize(model, directory: Path, calibration: int, seed: int):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    from ...models.bundle import read_meta
    from .onnx_files import calibration_batches

    meta = read_meta(directory)
    batches = calibration_batches(directory, meta, calibration, seed, batch=1)
    # NNCF draws its own progress bars; scenes prints one line when the export is written.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            # 7-bit weights in every layer (NNCF's default fixes only the first), depthwise
            # convolutions excepted: without VNNI (AVX2 only) the CPU's uint8 x int8 products
            # overflow with 8-bit weights, and the IR may be served on any CPU. See
            # onnx_files._depthwise_at_eight_bits.
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
        )


def compile_model(path: Path, device: str):
    """The IR compiled for ``device``: OpenVINO runs on the CPU here (auto and cpu)."""
    _telemetry_off()
    import openvino as ov

    from ...errors import UsageError

    if device not in ("auto", "cpu"):
        raise UsageError(f"--device {device}: the openvino backends run on the cpu here")
    # On CPUs with bf16 units (AMX, AVX512-BF16) OpenVINO computes in bf16 unless told not
    # to: fp32 layers then differ from PyTorch by ~1e-2. int8 layers stay int8 either way.
    from .. import cpu_threads

    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if cpu_threads.share() is not None:  # one of several serving processes: its share
        config["INFERENCE_NUM_THREADS"] = cpu_threads.share()
    return ov.Core().compile_model(str(path), "CPU", config)
