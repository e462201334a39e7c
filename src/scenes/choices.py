"""The names users type for options with a fixed set of values, each defined once: the code
that acts on a name checks against these, and the command line's help lists them. (Config
fields with a fixed set of values declare theirs in their types, in ``config.py``.)"""

from __future__ import annotations

# what runs a bundle's network: PyTorch, or an exported format (serve/formats/, serve/runners.py)
BACKENDS = ("torch", "onnx", "onnx-int8", "torchscript", "openvino", "openvino-int8")
EXPORT_FORMATS = (*BACKENDS[1:], "hf")  # hf: a model folder for the Hugging Face Hub
CALIBRATION_IMAGES = 300  # training images an int8 format is calibrated on, by default
SPLITS = ("val",)  # a run's own splits that `evaluate --split` may measure

# --method of explain -> the pytorch-grad-cam class. All of them read activations and
# gradients of the target layer only (no perturbation passes): about one forward pass each.
CAM_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "gradcam-elementwise": "GradCAMElementWise",
}
DEFAULT_CAM_METHOD = "gradcam"

# cleanlab's label-quality scores that rank suspects (data issues --method).
RANKING_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_RANKING_METHOD = "self_confidence"  # measured best (README, Results)

# How data select orders the photos to label next (selection/ranking.py says what each does).
SELECT_STRATEGIES = ("margin", "entropy", "diverse", "random")
DEFAULT_SELECT_STRATEGY = "margin"

# Default batch size of each kind of work (training's is data.batch_size in the config).
INFERENCE_BATCH = 64  # forward passes only: evaluate, predict, data issues' features
EXPLAIN_BATCH = 16  # a forward and a backward pass per image: explain


def worker_count(limit: int | None = 8) -> int:
    """Processes or threads for work that parallelises over files: the cores, at most
    ``limit`` (more rarely pays on disk-bound work; None: every core)."""
    import os

    cores = os.cpu_count() or 1
    return cores if limit is None else min(limit, cores)
