"""The command line's grammar: every ``scenes`` command, its options and their help.

Each command's parser names, by ``target``, the ``run_*`` function that carries it out, and
its options' names are that function's parameters; ``cli.py`` does the rest.
"""

from __future__ import annotations

import argparse

from .argtypes import at_least, devices, port_number, positive, positive_float


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune an ImageNet-pretrained model",
        description="Fine-tune a classifier; flags override the config file, --set any field.",
    )
    p.add_argument("--config", help="YAML recipe (e.g. configs/resnet50.yaml)")
    p.add_argument("--data", help="dataset folder (default: $SCENES_DATA or data/intel)")
    p.add_argument("--model", help="model name, e.g. resnet50, mobilenet_v2")
    p.add_argument("--epochs", type=positive)
    p.add_argument("--image-size", type=positive)
    p.add_argument("--batch-size", type=positive)
    p.add_argument("--lr", type=positive_float)
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="FILE", help="start from a local state-dict file")
    weights.add_argument("--no-pretrained", action="store_true", help="random initialisation")
    p.add_argument("--freeze-backbone", action="store_true", help="train the head only")
    p.add_argument("--resume", metavar="CKPT", help="continue a run from its checkpoint")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<model>-<time>)")
    p.add_argument(
        "--accelerator", choices=["auto", "cpu", "gpu", "cuda", "mps"], help="default: auto"
    )
    p.add_argument(
        "--devices",
        type=devices,
        metavar="N|IDS|auto",
        help="devices (processes) per node: a count, GPU ids such as 0,2, or auto",
    )
    p.add_argument("--num-nodes", type=positive, metavar="N", help="machines taking part")
    p.add_argument(
        "--strategy",
        metavar="NAME",
        help="auto (DDP when there is more than one process) or a Lightning strategy: ddp, ...",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set train.scheduler=step (repeatable)",
    )


def _data_parser(sub) -> None:
    p = sub.add_parser("data", help="dataset tools: download, check, stats, issues")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download Intel Image Classification with kagglehub")
    d.add_argument(
        "--dest", default=None, help="target folder (default: $SCENES_DATA or data/intel)"
    )
    d.set_defaults(target=".data.download:run_data_download")
    c = dsub.add_parser("check", help="find corrupt files, non-images, duplicates, label conflicts")
    c.add_argument("directory", metavar="DIR")
    c.set_defaults(target=".data.check:run_check")
    s = dsub.add_parser("stats", help="image counts per split and class")
    s.add_argument("directory", metavar="DIR")
    s.set_defaults(target=".data.check:run_stats")
    _data_issues_parser(dsub)
    k = dsub.add_parser(
        "cache",
        help="list or clear the cache of decoded images and features",
        description="What the cache folder holds (decoded images per dataset and size, "
        "backbone features, the model listing), with sizes and when each was last used; "
        "--clear removes them (only files scenes writes).",
    )
    k.add_argument(
        "--dir",
        dest="cache_dir",
        metavar="DIR",
        help="cache folder (default: $SCENES_CACHE, else ~/.cache/scenes; a run's "
        "data.cache_dir when it set one)",
    )
    k.add_argument("--clear", action="store_true", help="remove the listed entries")
    k.add_argument(
        "--older-than",
        type=positive_float,
        metavar="DAYS",
        help="only entries not used for DAYS days (default: all)",
    )
    k.set_defaults(target=".data.cache_command:run_cache")


def _data_issues_parser(dsub) -> None:
    i = dsub.add_parser(
        "issues",
        help="rank likely label errors in the training images (cleanlab)",
        description="Out-of-sample probabilities from a cross-validated linear head on frozen "
        "backbone features, ranked by cleanlab: writes label_issues.csv (usable as "
        "data.exclude), label_quality.csv, label_issues.png and summary.md.",
    )
    i.add_argument("directory", metavar="DIR", help="dataset folder (its training images)")
    backbone = i.add_mutually_exclusive_group()
    backbone.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="use this run's fine-tuned backbone (default: the pretrained one; a run's own "
        "training images are in-sample for it)",
    )
    backbone.add_argument(
        "--model", metavar="NAME", help="pretrained backbone (default: model.name, mobilenet_v2)"
    )
    i.add_argument(
        "--config",
        dest="config_path",
        metavar="FILE",
        help="recipe whose model.*, data.image_size, seed to use",
    )
    i.set_defaults(target=".data.issues:run_issues")
    i.add_argument(
        "--folds", type=at_least(2), default=5, help="cross-validation folds (default 5)"
    )
    i.add_argument("--top", type=positive, default=100, help="suspects to list (default 100)")
    i.add_argument(
        "--method",
        choices=["self_confidence", "normalized_margin", "confidence_weighted_entropy"],
        default="self_confidence",
        help="cleanlab ranking score (default: self_confidence, measured best)",
    )
    i.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: label_issues/<data-name>, or RUN_DIR/label_issues/"
        "<data-name> with --run)",
    )
    i.add_argument("--batch-size", type=positive, default=64, help="backbone batch size")
    i.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set data.image_size=224 (repeatable)",
    )


def _evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a trained model on a labelled folder")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory or model/ bundle")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        metavar="DIR",
        help="labelled folder (<class>/<images>), or a dataset root: its test folder is used",
    )
    source.add_argument(
        "--split",
        choices=["val"],
        help="the run's own validation split (listed in RUN_DIR/split.csv)",
    )
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument(
        "--explain",
        action="store_true",
        help="overlay the heatmap of the predicted class on the error grid (errors.png)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output folder (default: RUN_DIR/eval/<data-name or split>)"
    )
    p.add_argument("--batch-size", type=positive, default=64)
    _device_argument(p)
    p.set_defaults(target=".evaluation:run_evaluate")


def _device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="where the model runs: auto (a CUDA GPU when there is one, else cpu), cpu, cuda, "
        "cuda:N, mps",
    )


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify image files and folders")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory or model/ bundle")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--top-k", type=positive, default=3)
    p.add_argument("--out", metavar="CSV", help="write predictions to this CSV file")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    p.add_argument("--batch-size", type=positive, default=32)
    _device_argument(p)
    p.set_defaults(target=".predict:run_predict")


def _app_parser(sub) -> None:
    p = sub.add_parser("app", help="web app: drop a photo, see the top-3 classes")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory or model/ bundle")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=7860)
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    _device_argument(p)
    p.add_argument(
        "--no-explain",
        dest="explain",
        action="store_false",
        help="labels only, no heatmap beside them (faster per request)",
    )
    p.set_defaults(target=".app:run_app")


def _explain_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="heatmaps of where the model saw its class",
        description="For each image: the photo, the class-activation heatmap of the predicted "
        "class (or --class) and the two blended, captioned with the top-3; one PNG per image "
        "plus grid pages.",
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory or model/ bundle")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="explain this class")
    p.add_argument(
        "--method",
        default="gradcam",
        metavar="NAME",
        help="gradcam (default), gradcam++, xgradcam, hirescam, layercam, eigencam, "
        "eigengradcam, gradcam-elementwise",
    )
    p.add_argument(
        "--target-layer",
        metavar="DOTTED.NAME",
        help="the layer to map (default: chosen for the architecture, e.g. layer4)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/explain)")
    p.add_argument("--batch-size", type=positive, default=16)
    _device_argument(p)
    p.set_defaults(target=".explain:run_explain")


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="export the model (ONNX)")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory or model/ bundle")
    p.add_argument("--format", dest="fmt", choices=["onnx"], default="onnx")
    p.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/model/model.onnx)")
    p.set_defaults(target=".export:run_export")


def _resize_parser(sub) -> None:
    p = sub.add_parser("resize", help="resize a folder tree of images (in parallel)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--size", type=positive, default=224)
    p.add_argument("--workers", type=positive, default=None, help="processes (default: all cores)")
    p.set_defaults(target=".resize:run_resize")


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.md with tables and figures")
    run = p.add_mutually_exclusive_group(required=True)
    run.add_argument("--run", metavar="RUN_DIR", help="the run directory")
    run.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="the same, as a positional")
    p.set_defaults(target=".report:run_report")


def _models_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model names that can be trained")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN", help="e.g. 'resnet*'")
    p.set_defaults(target=".models.listing:run_models")


PARSERS = [
    _train_parser,
    _evaluate_parser,
    _predict_parser,
    _app_parser,
    _export_parser,
    _explain_parser,
    _resize_parser,
    _data_parser,
    _report_parser,
    _models_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scenes", description="Train, evaluate and serve scene image classifiers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser
