"""The options of the commands that use a trained run: evaluate, predict, app, explain,
export, report."""

from __future__ import annotations

from ..choices import (
    CALIBRATION_IMAGES,
    CAM_METHODS,
    DEFAULT_CAM_METHOD,
    EXPLAIN_BATCH,
    EXPORT_FORMATS,
    INFERENCE_BATCH,
)
from .common import (
    add_accept_all,
    add_backend,
    add_batch_size,
    add_device,
    add_engine,
    add_labelled_source,
    add_page_address,
    add_run,
    add_tta,
)
from .types import positive


def add_evaluate_parser(sub, common) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a trained model on a labelled folder or its validation split",
        description="Top-1 accuracy, macro F1, per-class precision/recall/F1, the confusion "
        "matrix and the most confident mistakes, written to a folder of the run.",
    )
    common(p)
    add_run(p)
    add_labelled_source(p)
    add_tta(p)
    add_accept_all(p)
    p.add_argument(
        "--explain",
        action="store_true",
        help="overlay the heatmap of the predicted class on the grid of mistakes (errors.png)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="the folder for metrics.json, the CSVs and figures (default: RUN_DIR/eval/<name>, "
        "numbered when another folder of that name was evaluated there)",
    )
    p.add_argument(
        "--no-leakage-check",
        dest="leakage_check",
        action="store_false",
        help="skip comparing the images with the run's training images (near-duplicates, "
        "by ImageNet MobileNetV2 features; single-label runs)",
    )
    add_batch_size(p, INFERENCE_BATCH)
    add_backend(p)
    add_device(p)
    add_engine(p, "ray: the images spread over a pool of Ray Data workers, the same metrics")
    p.set_defaults(target=".evaluation.loop:run_evaluate")


def add_predict_parser(sub, common) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files and folders",
        description="The top classes of each file, as a table or a CSV written as it goes; "
        "exit code 1 when a file could not be read (its row says why).",
    )
    common(p)
    add_run(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched)")
    p.add_argument(
        "--top-k", type=positive, default=3, metavar="K", help="classes per file (default: 3)"
    )
    p.add_argument(
        "--out",
        metavar="CSV",
        help="write a CSV (path, label_1, prob_1, ..., error) to this file, or to stdout with "
        "--out - (default: a table on stdout)",
    )
    add_tta(p)
    add_accept_all(p)
    add_batch_size(p, INFERENCE_BATCH)
    add_backend(p)
    add_device(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network first: about 15 s here, then each batch faster (pays "
        "after some thousands of photos on a CPU; default: eager)",
    )
    add_engine(
        p,
        "ray: a pool of Ray Data workers on this machine or a cluster, writing --out (Parquet "
        "or CSV) as results stream, and resuming it when run again",
    )
    p.set_defaults(target=".serve.predict:run_predict")


def add_app_parser(sub, common) -> None:
    p = sub.add_parser(
        "app",
        help="web app: drop a photo, see the top-3 classes and a heatmap",
        description="A Gradio page (and /predict API) serving the run's model.",
    )
    common(p)
    add_run(p)
    add_page_address(p)
    p.add_argument(
        "--no-explain",
        dest="explain",
        action="store_false",
        help="labels only, no heatmap beside them (less work per request)",
    )
    p.add_argument(
        "--examples",
        metavar="DIR",
        help="offer a few photos of this folder as examples on the page (one per class "
        "subfolder); by default the page has none",
    )
    add_tta(p)
    add_accept_all(p)
    add_backend(p, "; the heatmap always comes from the PyTorch network")
    add_device(p)
    p.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="serve the PyTorch network eagerly; by default it is torch.compile'd at start "
        "(about 15 s here; then each photo 26-29%% faster on 2 CPU cores), and served eagerly "
        "when compiling fails",
    )
    p.set_defaults(target=".serve.app:run_app")


def add_explain_parser(sub, common) -> None:
    p = sub.add_parser(
        "explain",
        help="heatmaps of where the model saw its class",
        description="For each image: the photo, the class-activation heatmap of the predicted "
        "class (or --class) and the two blended, captioned with the top-3; one PNG per image, "
        "grid pages, and index.csv.",
    )
    common(p)
    add_run(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched)")
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="show where this class was seen (default: each image's top class)",
    )
    p.add_argument(
        "--method",
        choices=list(CAM_METHODS),
        default=DEFAULT_CAM_METHOD,
        metavar="NAME",
        help=f"the class-activation method: {', '.join(CAM_METHODS)} (default: "
        f"{DEFAULT_CAM_METHOD})",
    )
    p.add_argument(
        "--target-layer",
        metavar="DOTTED.NAME",
        help="the layer to map (default: chosen for the architecture, e.g. layer4)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="the folder for the figures and index.csv; an earlier explain's figures there are "
        "removed first (default: RUN_DIR/explain)",
    )
    add_batch_size(p, EXPLAIN_BATCH)
    add_backend(p, "; it gives the top-3, the heatmaps come from the PyTorch network")
    add_device(p)
    p.set_defaults(target=".explain.command:run_explain")


def add_export_parser(sub, common) -> None:
    p = sub.add_parser(
        "export",
        help="export the model: ONNX (fp32, int8), TorchScript, OpenVINO, a Hugging Face folder",
        description="Write the bundle's network in another format (served by --backend of "
        "predict, evaluate, app, explain and benchmark), or a folder for the Hugging Face Hub "
        "with a model card.",
    )
    common(p)
    add_run(p)
    p.add_argument(
        "--format",
        dest="fmt",
        choices=EXPORT_FORMATS,
        default="onnx",
        help="onnx; onnx-int8 (static quantisation calibrated on training images); "
        "torchscript; openvino, openvino-int8 (pip install 'scenes[openvino]'); hf (a folder "
        "for the Hugging Face Hub, with --out DIR) (default: onnx)",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="the file to write (default: in RUN_DIR/model/, e.g. model.onnx); a folder for "
        "--format hf (required there)",
    )
    p.add_argument(
        "--calibration",
        type=positive,
        default=CALIBRATION_IMAGES,
        metavar="N",
        help=f"int8 formats: training images to calibrate on, from split.csv (default: "
        f"{CALIBRATION_IMAGES})",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the calibration images drawn (default: 0)"
    )
    p.add_argument(
        "--push",
        metavar="REPO_ID",
        help="--format hf: upload the folder to this Hugging Face Hub repository (needs "
        "internet and a login; offline the folder is kept and the upload command printed; "
        "default: no upload)",
    )
    p.set_defaults(target=".hub.command:run_export")


def add_report_parser(sub, common) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.md with tables and figures")
    common(p)
    run = p.add_mutually_exclusive_group(required=True)
    run.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="the run directory, or its model/ folder (required: this or the positional)",
    )
    run.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="the same, as a positional")
    p.set_defaults(target=".evaluation.report:run_report")


def add_ensemble_parser(sub, common) -> None:
    p = sub.add_parser(
        "ensemble",
        help="one bundle that averages the probabilities of several runs",
        description="Write one model bundle that averages the members' probabilities, each "
        "member seeing the photo with its own preprocessing; evaluate, predict, the app, "
        "explain, export and benchmark take it like any run.",
    )
    common(p)
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="the members: run directories or model/ folders (required: at least 2)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder to write (model/, and split.csv when the members share one; required)",
    )
    p.set_defaults(target=".models.ensemble_command:run_ensemble")
