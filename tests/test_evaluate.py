"""scenes.evaluation: metrics vs scikit-learn, determinism, TTA, no training data, outputs."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

import scenes.data.images
from scenes import plots
from scenes.cli import main
from scenes.errors import DataError
from scenes.evaluation.loop import evaluate
from scenes.evaluation.outputs import most_confident_errors
from scenes.metrics import compute_metrics
from scenes.serve.predictor import Predictor

from conftest import make_folder

CLASSES = ["cat_a", "cat_b", "cat_c"]


@pytest.fixture
def eval_folder(tmp_path) -> Path:
    """Fresh images of the trained classes (other seeds than the training folder)."""
    return make_folder(tmp_path / "holdout", CLASSES, 5, seed=7)


def _all_finite(value) -> bool:
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_metrics_agree_with_sklearn_including_a_never_predicted_class():
    names = ["a", "b", "c", "d"]
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 1, 0]
    y_pred = [0, 1, 0, 1, 2, 2, 2, 0, 0, 1, 1, 0]  # class d is never predicted
    m = compute_metrics(y_true, y_pred, names)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["confusion"] == confusion_matrix(y_true, y_pred, labels=range(4)).tolist()
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for i, name in enumerate(names):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert _all_finite(m)
    assert json.loads(json.dumps(m)) == m  # plain JSON numbers, no NaN


def test_macro_f1_ignores_a_class_missing_from_labels_and_predictions_like_sklearn():
    names = ["a", "b", "c"]
    y_true, y_pred = [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]  # class c absent from the test folder
    m = compute_metrics(y_true, y_pred, names)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["per_class"]["c"]["support"] == 0
    assert _all_finite(m)


def test_same_bundle_twice_gives_identical_numbers(trained_run, eval_folder):
    first = evaluate(trained_run, data=eval_folder, out=False)
    second = evaluate(trained_run, data=eval_folder, out=False)
    assert np.array_equal(first.logits, second.logits)
    assert (first.accuracy, first.macro_f1) == (second.accuracy, second.macro_f1)
    assert first.confusion == second.confusion
    assert first.predictions == second.predictions


def test_tta_averages_the_flip_and_keeps_the_class_order(trained_run, eval_folder):
    plain = evaluate(trained_run, data=eval_folder, out=False)
    tta = evaluate(trained_run, data=eval_folder, tta=True, out=False)
    assert tta.class_names == plain.class_names == CLASSES
    assert [p["path"] for p in tta.predictions] == [p["path"] for p in plain.predictions]
    assert not np.allclose(plain.logits, tta.logits)
    # TTA logits are the mean of the image's and its mirror's, class by class.
    model = Predictor.load(trained_run, device="cpu")
    pixels, ok, _ = model.load_images([p["path"] for p in plain.predictions])
    mirrored = model.logits(np.ascontiguousarray(pixels[:, :, ::-1]))
    assert np.allclose(tta.logits, (plain.logits + mirrored) / 2, atol=1e-5)


def test_evaluation_never_reads_the_training_split(trained_run, tmp_path, monkeypatch):
    root = tmp_path / "dataset"
    make_folder(root / "train", CLASSES, 4, seed=3)
    make_folder(root / "test", CLASSES, 3, seed=4)
    read: list[str] = []
    real_load = scenes.data.images.load_image

    def recording_load(source, *args, **kwargs):
        read.append(str(source))
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(scenes.data.images, "load_image", recording_load)
    result = evaluate(trained_run, data=root, out=tmp_path / "out")
    assert result.num_images == 9
    assert read and all(Path(p).parent.parent == root / "test" for p in read)

    # The run's validation split: exactly the val rows of split.csv, no train row.
    read.clear()
    with (trained_run / "split.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    val = {r["path"] for r in rows if r["split"] == "val"}
    train = {r["path"] for r in rows if r["split"] == "train"}
    result = evaluate(trained_run, split="val", out=tmp_path / "val")
    assert set(read) == val and not set(read) & train
    assert {p["path"] for p in result.predictions} == val


def test_a_root_with_only_a_training_folder_is_refused(trained_run, tmp_path):
    make_folder(tmp_path / "dataset" / "train", CLASSES, 2)
    with pytest.raises(DataError, match="--split val"):
        evaluate(trained_run, data=tmp_path / "dataset", out=False)


def test_classes_are_matched_by_name(trained_run, tmp_path):
    # Folder order differs from the model's (only cat_c and cat_a): labels follow the names.
    partial = make_folder(tmp_path / "partial", ["cat_c", "cat_a"], 3, seed=5)
    result = evaluate(trained_run, data=partial, out=False)
    assert result.per_class["cat_b"]["support"] == 0
    assert result.per_class["cat_a"]["support"] == 3 and result.per_class["cat_c"]["support"] == 3
    assert {p["true"] for p in result.predictions if "cat_c" in p["path"]} == {"cat_c"}
    assert _all_finite(result.summary())

    unknown = make_folder(tmp_path / "unknown", ["cat_a", "cat_z"], 2)
    with pytest.raises(DataError, match="cat_z"):
        evaluate(trained_run, data=unknown, out=False)


def test_outputs_are_written_and_consistent(trained_run, eval_folder, tmp_path):
    (eval_folder / "cat_a" / "text.jpg").write_text("not a jpeg")
    good = eval_folder / "cat_b" / "000.jpg"
    (eval_folder / "cat_b" / "cut.jpg").write_bytes(good.read_bytes()[:300])  # truncated
    out = tmp_path / "eval"
    result = evaluate(trained_run, data=eval_folder, out=out)
    assert result.out_dir == out
    assert len(result.skipped) == 2 and result.num_images == 15
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["accuracy"] == result.accuracy and saved["macro_f1"] == result.macro_f1
    assert saved["num_skipped"] == 2 and saved["confusion"] == result.confusion

    with (out / "predictions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15
    for row, pred in zip(rows, result.predictions):
        assert float(row["confidence"]) == pred["confidence"]  # full precision round-trip
        top3 = [item.split(":") for item in row["top3"].split(";")]
        assert len(top3) == 3 and top3[0][0] == row["predicted"]
        assert float(top3[0][1]) == float(row["confidence"])
        assert [float(p) for _, p in top3] == sorted((float(p) for _, p in top3), reverse=True)
    correct = sum(r["true"] == r["predicted"] for r in rows)
    assert correct / len(rows) == pytest.approx(result.accuracy)

    with (out / "confusion_matrix.csv").open(newline="") as fh:
        matrix = list(csv.reader(fh))
    assert matrix[0][1:] == CLASSES
    assert sum(int(v) for row in matrix[1:] for v in row[1:]) == 15
    for name in ("confusion_matrix.png", "errors.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
    with Image.open(out / "confusion_matrix.png") as image:
        assert image.size == plots.pixel_size("confusion_matrix")


def test_error_grid_shows_only_misclassified_items(trained_run, tmp_path, monkeypatch):
    # Swap two class folders: the model's colour-based guesses become mistakes.
    swapped = make_folder(tmp_path / "swapped", CLASSES, 8, seed=9)
    (swapped / "cat_a").rename(swapped / "tmp")
    (swapped / "cat_b").rename(swapped / "cat_a")
    (swapped / "tmp").rename(swapped / "cat_b")
    shown: list[list[str]] = []
    real_grid = plots.plot_image_grid

    def recording_grid(images, captions, path, **kwargs):
        shown.append(list(captions))
        return real_grid(images, captions, path, **kwargs)

    monkeypatch.setattr(plots, "plot_image_grid", recording_grid)
    result = evaluate(trained_run, data=swapped, out=tmp_path / "out")
    wrong = [p for p in result.predictions if p["predicted"] != p["true"]]
    assert wrong, "the swapped folders should produce mistakes"
    (captions,) = shown
    assert len(captions) == min(16, len(wrong))
    for caption in captions:
        true = caption.split("\n")[0].removeprefix("true ")
        predicted = caption.split("\n")[1].removeprefix("pred ").split(" ")[0]
        assert true != predicted


def test_most_confident_errors_orders_by_confidence_and_drops_correct_ones():
    preds = [
        {"true": "a", "predicted": "a", "confidence": 0.99},
        {"true": "a", "predicted": "b", "confidence": 0.6},
        {"true": "b", "predicted": "a", "confidence": 0.9},
        *({"true": "c", "predicted": "b", "confidence": 0.5 - i / 100} for i in range(20)),
    ]
    chosen = most_confident_errors(preds)
    assert len(chosen) == 16
    assert all(p["true"] != p["predicted"] for p in chosen)
    assert [p["confidence"] for p in chosen[:2]] == [0.9, 0.6]
    assert chosen == sorted(chosen, key=lambda p: -p["confidence"])


def test_cli_evaluate_exit_codes(trained_run, eval_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(trained_run),
                "--data",
                str(eval_folder),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "top-1 accuracy" in printed and "macro F1" in printed
    assert (out / "metrics.json").is_file()

    # --split val with the default output folder, inside a copy of the shared run.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["evaluate", "--run", str(run / "model"), "--split", "val"]) == 0
    assert (run / "eval" / "val" / "metrics.json").is_file()

    bad = make_folder(tmp_path / "bad", ["dogs"], 1)
    assert main(["evaluate", "--run", str(trained_run), "--data", str(bad)]) == 2
    assert "dogs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--run", str(trained_run), "--data", str(bad), "--split", "val"])
    assert exc.value.code == 2
