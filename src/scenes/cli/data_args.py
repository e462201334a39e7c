"""The options of the dataset tools (``scenes data ...``), ``resize`` and ``models``."""

from __future__ import annotations

from ..choices import (
    DEFAULT_RANKING_METHOD,
    DEFAULT_SELECT_STRATEGY,
    INFERENCE_BATCH,
    RANKING_METHODS,
    SELECT_STRATEGIES,
)
from .common import add_batch_size, add_device, add_engine
from .types import at_least, positive, positive_float


def add_data_parser(sub, common) -> None:
    p = sub.add_parser("data", help="dataset tools: download, check, stats, issues, select, cache")
    common(p)
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    d = dsub.add_parser("download", help="download Intel Image Classification with kagglehub")
    common(d)
    d.add_argument(
        "--out",
        "--dest",
        dest="dest",
        metavar="DIR",
        help="the folder to lay it out in, as DIR/train, DIR/test, DIR/pred (default: "
        "$SCENES_DATA, else data/intel)",
    )
    d.set_defaults(target=".data.download:run_data_download")
    c = dsub.add_parser(
        "check",
        help="find corrupt files, non-images, duplicates, label conflicts",
        description="Exit code 0 when the folder is clean, 1 when problems (or, with --near, "
        "near-duplicate groups) were found.",
    )
    common(c)
    c.add_argument("directory", metavar="DIR", help="a dataset folder (any accepted layout)")
    c.add_argument(
        "--near",
        action="store_true",
        help="also group near-duplicates (re-encoded, resized, slightly cropped or brightened "
        "copies) by ImageNet MobileNetV2 features; writes duplicates.csv and duplicates.png",
    )
    c.add_argument(
        "--out",
        metavar="DIR",
        help="where --near writes (default: near_duplicates/<data-name>)",
    )
    c.set_defaults(target=".label_issues.near_check:run_check")
    s = dsub.add_parser("stats", help="image counts per split and class")
    common(s)
    s.add_argument("directory", metavar="DIR", help="a dataset folder (any accepted layout)")
    s.set_defaults(target=".data.check:run_stats")
    add_issues_parser(dsub, common)
    add_select_parser(dsub, common)
    add_cache_parser(dsub, common)


def add_issues_parser(dsub, common) -> None:
    i = dsub.add_parser(
        "issues",
        help="rank likely label errors in the training images (cleanlab)",
        description="Out-of-sample probabilities from a cross-validated linear head on frozen "
        "backbone features, ranked by cleanlab: writes label_issues.csv (usable as "
        "data.exclude), label_quality.csv, label_issues.png and summary.md.",
    )
    common(i)
    i.add_argument("directory", metavar="DIR", help="a dataset folder (its training images)")
    backbone = i.add_mutually_exclusive_group()
    backbone.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="use this run's fine-tuned backbone (default: the pretrained one; a run's own "
        "training images are in-sample for it)",
    )
    backbone.add_argument(
        "--model", metavar="NAME", help="a pretrained backbone (default: model.name, mobilenet_v2)"
    )
    i.add_argument(
        "--config",
        dest="config_path",
        metavar="FILE",
        help="a recipe whose model.*, data.image_size and seed to use (default: none)",
    )
    i.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config field, e.g. --set data.image_size=224 (repeatable; default: none)",
    )
    i.add_argument(
        "--folds", type=at_least(2), default=5, help="cross-validation folds (default: 5)"
    )
    i.add_argument(
        "--top", type=positive, default=100, help="suspects to list and show (default: 100)"
    )
    i.add_argument(
        "--method",
        choices=RANKING_METHODS,
        default=DEFAULT_RANKING_METHOD,
        help=f"cleanlab's ranking score (default: {DEFAULT_RANKING_METHOD}, measured best)",
    )
    i.add_argument(
        "--out",
        metavar="DIR",
        help="the output folder (default: label_issues/<data-name>, or RUN_DIR/label_issues/"
        "<data-name> with --run)",
    )
    add_batch_size(i, INFERENCE_BATCH)
    add_device(i)
    add_engine(
        i,
        "ray: the backbone features (the costly part) computed by a pool of Ray Data workers, "
        "the same ranking",
    )
    i.set_defaults(target=".label_issues.command:run_issues")


def add_select_parser(dsub, common) -> None:
    s = dsub.add_parser(
        "select",
        help="choose which unlabelled photos to label next (active learning)",
        description="Scores the photos of POOL with the run's model (the probabilities of "
        "`scenes predict`) and writes the N to label next, in order, to a CSV: rank, path, "
        "score, strategy, label_1, prob_1, label_2, prob_2. Photos listed in the run's "
        "split.csv are skipped. Exit code 1 when a photo could not be read (named).",
    )
    common(s)
    s.add_argument(
        "--run", required=True, metavar="RUN_DIR", help="a run or model bundle (required)"
    )
    s.add_argument("pool", nargs="+", metavar="POOL", help="unlabelled photos: files, folders")
    s.add_argument("--n", type=positive, required=True, help="how many photos to choose (required)")
    s.add_argument(
        "--strategy",
        choices=SELECT_STRATEGIES,
        default=DEFAULT_SELECT_STRATEGY,
        help="margin: smallest top-1 minus top-2 probability first; entropy: highest entropy "
        "first; diverse: k-center greedy on the features among the 5N smallest margins, so "
        "near-identical photos are not all chosen; random: the baseline (default: "
        f"{DEFAULT_SELECT_STRATEGY})",
    )
    s.add_argument("--seed", type=int, default=None, help="--strategy random's seed (default: 0)")
    s.add_argument("--out", required=True, metavar="FILE.csv", help="the list to write (required)")
    add_batch_size(s, INFERENCE_BATCH)
    add_device(s)
    s.set_defaults(target=".selection.command:run_select")


def add_cache_parser(dsub, common) -> None:
    k = dsub.add_parser(
        "cache",
        help="list or clear the cache of decoded images and features",
        description="What the cache folder holds (decoded images per dataset and size, "
        "backbone features, the model listing), with sizes and when each was last used; "
        "--clear removes them (only files scenes writes).",
    )
    common(k)
    k.add_argument(
        "--dir",
        dest="cache_dir",
        metavar="DIR",
        help="the cache folder (default: $SCENES_CACHE, else ~/.cache/scenes; a run's "
        "data.cache_dir when it set one)",
    )
    k.add_argument("--clear", action="store_true", help="remove the listed entries")
    k.add_argument(
        "--older-than",
        type=positive_float,
        metavar="DAYS",
        help="only entries not used for DAYS days (default: every entry)",
    )
    k.set_defaults(target=".data.cache_command:run_cache")


def add_resize_parser(sub, common) -> None:
    p = sub.add_parser(
        "resize",
        help="resize a folder tree of images (in parallel)",
        description="Keeps the tree and each file's format; exit code 1 when a file could not "
        "be read.",
    )
    common(p)
    p.add_argument("src", metavar="SRC", help="the folder to read")
    p.add_argument("dst", metavar="DST", help="the folder to write (not SRC or inside it)")
    p.add_argument(
        "--size", type=positive, default=224, metavar="PX", help="square size (default: 224)"
    )
    p.add_argument("--workers", type=positive, metavar="N", help="processes (default: every core)")
    p.set_defaults(target=".data.resize:run_resize")


def add_models_parser(sub, common) -> None:
    p = sub.add_parser("models", help="list the model names that can be trained")
    common(p)
    p.add_argument(
        "pattern",
        nargs="?",
        default=None,
        metavar="PATTERN",
        help="a shell pattern such as 'resnet*' or 'timm:convnext*' (default: torchvision's "
        "names, and how to list timm's)",
    )
    p.set_defaults(target=".models.listing:run_models")
