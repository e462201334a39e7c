"""``scenes serve --triton-repo DIR``: a Triton Inference Server model repository of the run's
ONNX graph (``DIR/scenes/config.pbtxt``, ``DIR/scenes/1/model.onnx``, ``labels.txt``), with
dynamic batching on, for teams that serve on Triton.

Triton answers the graph's outputs, not scenes' answers: ``logits`` (before the temperature)
and ``features`` of an input the client has decoded, resized and normalised itself (the
preprocessing ``/info`` and model.json describe). Only scenes' own paths apply the
temperature, the softmax and the acceptance of unknown photos.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import replacing_folder
from ..models.bundle import read_meta, resolve_bundle_dir
from .served_exports import current_export

MODEL = "scenes"
MAX_BATCH = 64
QUEUE_DELAY_US = 5000


def config_text(classes: int, size: int, features: int) -> str:
    return f"""name: "{MODEL}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH}
input [
  {{ name: "input", data_type: TYPE_FP32, dims: [ 3, {size}, {size} ] }}
]
output [
  {{ name: "logits", data_type: TYPE_FP32, dims: [ {classes} ], label_filename: "labels.txt" }},
  {{ name: "features", data_type: TYPE_FP32, dims: [ {features} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} }}
"""


def feature_width(onnx_file: Path) -> int:
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    output = next(o for o in graph.output if o.name == "features")
    return output.type.tensor_type.shape.dim[1].dim_value


def write_triton_repo(run: str, folder: str | Path) -> Path:
    """The repository at ``folder`` (replaced whole), from the bundle's current ONNX file
    (exported first when missing or stale)."""
    directory = resolve_bundle_dir(run)
    meta = read_meta(directory)
    onnx_file = current_export(directory, "onnx")
    config = config_text(len(meta.class_names), meta.image_size, feature_width(onnx_file))
    with replacing_folder(folder) as build:
        (build / MODEL / "1").mkdir(parents=True)
        (build / MODEL / "1" / "model.onnx").write_bytes(onnx_file.read_bytes())
        (build / MODEL / "config.pbtxt").write_text(config)
        (build / MODEL / "labels.txt").write_text("\n".join(meta.class_names) + "\n")
    return Path(folder)
