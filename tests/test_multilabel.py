"""Several labels per image, end to end on real photos: two scenes side by side carry both
labels, one scene its own, a blank frame none. A CSV names them; training, the per-class
thresholds, evaluate, predict, the app, explain, ONNX and the report all follow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenes.cli import main
from scenes.config import load_config
from scenes.data.multilabel import read_labels_csv, split_multilabel
from scenes.errors import ConfigError, DataError
from scenes.serve.predictor import Predictor
from scenes.training import train

from conftest import INTEL_TRAIN, MOBILENET_FILE, needs_intel, needs_weights

CLASSES = ["forest", "sea", "street"]


def photo(name: str, i: int) -> Image.Image:
    return Image.open(sorted((INTEL_TRAIN / name).iterdir())[i]).convert("RGB").resize((150, 150))


def compose(root: Path, count: int, offset: int = 0) -> Path:
    """``root/images/*.jpg`` and ``root/labels.csv``: pairs side by side (both labels), single
    photos (one label), blank frames (no label)."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(count):
        j = offset + i
        a, b = CLASSES[(i // 3) % 3], CLASSES[(i // 3 + 1) % 3]  # every class, alone and paired
        if i % 3 == 0:  # a pair
            canvas = Image.new("RGB", (300, 150))
            canvas.paste(photo(a, j), (0, 0))
            canvas.paste(photo(b, j), (150, 0))
            labels = f"{a} {b}"
        elif i % 3 == 1:
            canvas, labels = photo(a, j), a
        else:
            canvas, labels = Image.new("RGB", (150, 150), (128 + i % 7, 128, 128)), ""
        canvas.save(images / f"{i:03d}.jpg")
        rows.append((f"images/{i:03d}.jpg", labels))
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "labels"])
        writer.writerows(rows)
    return root / "labels.csv"


def test_the_labels_csv_is_read_and_its_mistakes_named(tmp_path):
    folder = tmp_path / "d"
    (folder / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(folder / "images" / name)
    csv_file = folder / "labels.csv"
    csv_file.write_text("path,labels\nimages/a.jpg,sea forest\nimages/b.jpg,\nimages/c.jpg,sea\n")
    files = read_labels_csv(csv_file)
    assert files.class_names == ["forest", "sea"]
    assert files.labels.tolist() == [[1, 1], [0, 0], [0, 1]]
    assert read_labels_csv(csv_file, ["sea", "forest", "street"]).labels.tolist()[0] == [1, 1, 0]
    with pytest.raises(DataError, match="data.classes does not list: forest"):
        read_labels_csv(csv_file, ["sea", "street"])
    csv_file.write_text("path,labels\nimages/a.jpg,sea\nimages/gone.jpg,forest\n")
    with pytest.raises(DataError, match="1 missing file"):
        read_labels_csv(csv_file)
    csv_file.write_text("file,tags\n")
    with pytest.raises(DataError, match="columns path and labels"):
        read_labels_csv(csv_file)


@pytest.mark.parametrize(
    "text",
    [
        "path, labels\nimages/a.jpg, sea forest\nimages/b.jpg,\nimages/c.jpg, sea\n",
        "\ufeffpath,labels\nimages/a.jpg,sea forest\nimages/b.jpg,\nimages/c.jpg,sea\n",
        'Path , LABELS\n images/a.jpg ," sea forest "\n\nimages/b.jpg\nimages/c.jpg,sea \n',
        "labels,path,note\r\nsea forest,images/a.jpg,x\r\n,images/b.jpg,\r\nsea,images/c.jpg,y\r\n",
    ],
    ids=["spaces", "bom", "case-quotes-short-row", "other-order-crlf"],
)
def test_a_labels_csv_written_by_a_person_is_read(tmp_path, text):
    folder = tmp_path / "d"
    (folder / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(folder / "images" / name)
    (folder / "labels.csv").write_bytes(text.encode("utf-8"))
    files = read_labels_csv(folder / "labels.csv")
    assert files.class_names == ["forest", "sea"]
    assert [p.name for p in files.paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert files.labels.tolist() == [[1, 1], [0, 0], [0, 1]]


@pytest.mark.parametrize(
    "data, says",
    [
        (b"path,label\nimages/a.jpg,sea\n", "found: path, label"),
        (b"path,labels,Labels\nimages/a.jpg,sea,sea\n", "twice: labels"),
        (b"path,labels\nimages/\xe9.jpg,sea\n", "not UTF-8"),
        (b"", "found: no header"),
    ],
)
def test_a_labels_csv_that_cannot_be_read_is_refused_by_name(tmp_path, capsys, data, says):
    labels = tmp_path / "labels.csv"
    labels.write_bytes(data)
    with pytest.raises(DataError, match=says) as refused:
        read_labels_csv(labels)
    assert str(labels) in str(refused.value)
    assert "columns path and labels" in str(refused.value) or "UTF-8" in str(refused.value)
    argv = ["train", "--data", str(tmp_path), "--set", "data.labels=labels.csv"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert str(labels) in capsys.readouterr().err


def test_the_split_keeps_every_label_on_both_sides():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(np.uint8)
    train_idx, val_idx = split_multilabel(labels, 0.2, seed=1)
    assert len(set(train_idx) & set(val_idx)) == 0 and len(train_idx) + len(val_idx) == 200
    share = labels[val_idx].sum(axis=0) / labels.sum(axis=0)
    assert np.all(np.abs(share - 0.2) < 0.1), share  # each label in proportion
    again = split_multilabel(labels, 0.2, seed=1)
    assert np.array_equal(again[1], val_idx)
    groups = [str(i // 2) for i in range(200)]  # pairs of exact copies
    t, v = split_multilabel(labels, 0.2, seed=1, groups=groups)
    assert not {groups[i] for i in t} & {groups[i] for i in v}


def test_options_that_fit_single_label_data_only_are_refused():
    with pytest.raises(ConfigError, match="val_acc does not apply to multilabel"):
        load_config(sets=["data.labels=l.csv", "train.monitor=val_acc"])
    with pytest.raises(ConfigError, match="data.sampler=balanced does not apply"):
        load_config(sets=["data.labels=l.csv", "data.sampler=balanced"])
    assert load_config(sets=["data.labels=l.csv"]).task == "multilabel"


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory) -> dict:
    if not (INTEL_TRAIN.is_dir() and MOBILENET_FILE.is_file()):
        pytest.skip("needs the shared photos and weights")
    root = tmp_path_factory.mktemp("multilabel")
    labels = compose(root / "train", 60)
    test_labels = compose(root / "test", 12, offset=200)
    cfg = load_config(
        overrides={
            "data.dir": str(root / "train"),
            "data.labels": "labels.csv",  # relative: found under --data
            "data.image_size": 64,
            "data.batch_size": 8,
            "data.val_fraction": 0.3,
            "model.name": "mobilenet_v2",
            "model.weights_file": str(MOBILENET_FILE),
            "train.mode": "head",
            "train.epochs": 4,
            "train.lr": 0.01,
            "train.progress_bar": False,
            "augment.mixup_alpha": 0.2,  # mixes the label vectors too
            "out": str(root / "run"),
        }
    )
    result = train(cfg)
    return {"run": result.run_dir, "labels": labels, "test": test_labels, "result": result}


@needs_intel
@needs_weights
def test_a_multilabel_run_trains_and_records_its_task(ml_run):
    run = ml_run["run"]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == [
        "epoch",
        "time_s",
        "lr",
        "train_loss",
        "train_map",
        "train_f1",
        "val_loss",
        "val_map",
        "val_f1",
    ]
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["task"] == "multilabel" and meta["class_names"] == CLASSES
    assert len(meta["thresholds"]) == 3 and all(0 < t < 1 for t in meta["thresholds"])
    rows = list(csv.DictReader((run / "split.csv").open()))
    assert {r["label"] for r in rows} >= {"forest sea", "sea", ""}
    assert ml_run["result"].best["val_map"] > 0.6


@needs_intel
@needs_weights
def test_evaluate_predict_and_onnx_follow(ml_run, tmp_path, capsys):
    run = ml_run["run"]
    assert (
        main(["evaluate", "--run", str(run), "--split", "val", "--out", str(tmp_path / "v")]) == 0
    )
    out = capsys.readouterr().out
    assert "mean average precision" in out and "TP" in out
    code = main(
        [
            "evaluate",
            "--run",
            str(run),
            "--labels",
            str(ml_run["test"]),
            "--out",
            str(tmp_path / "t"),
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["num_images"] == 12
    assert set(metrics["per_class"]["sea"]) >= {"ap", "tp", "fp", "fn", "tn"}
    assert (tmp_path / "t" / "errors.png").is_file()
    # a single-label call is refused with the fix
    assert main(["evaluate", "--run", str(run), "--data", str(tmp_path)]) == 2
    assert "--labels FILE" in capsys.readouterr().err

    pair = ml_run["test"].parent / "images" / "000.jpg"  # forest + sea
    preds = tmp_path / "p.csv"
    assert main(["predict", "--run", str(run), str(pair), "--out", str(preds)]) == 0
    row = next(csv.DictReader(preds.open()))
    assert set(row) >= {"labels", "prob_forest", "prob_sea", "prob_street"}
    model = Predictor.load(run, device="cpu")
    answer = model.predict(pair, top_k=3)
    assert row["labels"] == " ".join(answer.labels)
    thresholds = model.meta.thresholds
    assert answer.labels == [
        n
        for n, p in sorted(dict(answer).items(), key=lambda kv: -kv[1])
        if p >= thresholds[CLASSES.index(n)]
    ]
    onnx = Predictor.load(run, backend="onnx")
    pixels = model.load_image(pair)[None]
    np.testing.assert_allclose(onnx.probabilities(pixels), model.probabilities(pixels), atol=1e-5)
    probs = model.probabilities(pixels)[0]
    assert np.all((probs >= 0) & (probs <= 1)) and not np.isclose(probs.sum(), 1.0)  # sigmoids


@needs_intel
@needs_weights
def test_the_app_explain_and_report_follow(ml_run, tmp_path):
    from gradio_client import Client, handle_file

    from scenes.serve.app import build_app

    from test_app import launch

    run = ml_run["run"]
    pair = ml_run["test"].parent / "images" / "000.jpg"
    model = Predictor.load(run, device="cpu")
    demo = build_app(model, explain=False)
    try:
        labels, answer = Client(launch(demo), verbose=False).predict(
            handle_file(str(pair)), api_name="/predict"
        )
    finally:
        demo.close()
    assert len(labels["confidences"]) == 3  # every class's probability
    assert answer == (", ".join(model.predict(pair).labels) or "no label")
    out = tmp_path / "x"
    assert main(["explain", "--run", str(run), str(pair), "--out", str(out)]) == 0
    predicted = model.predict(pair).labels or [model.predict(pair)[0][0]]
    assert sorted(p.name for p in out.glob("000-*.png")) == sorted(
        f"000-{c}.png" for c in predicted
    )
    assert main(["report", "--run", str(run)]) == 0
    assert "multilabel" in (run / "report.md").read_text()


@needs_intel
@needs_weights
def test_every_class_has_its_probability_with_fewer_label_columns(ml_run, tmp_path, capsys):
    """--top-k 1 on 3 classes: CSV, stdout and Parquet rows still carry all 3 probabilities."""
    pd = pytest.importorskip("pandas")
    from scenes.serve.csv_rows import csv_header
    from scenes.serve.prediction_files import PredictionSink
    from scenes.serve.ray_predict import BatchPredictor

    run = ml_run["run"]
    images = ml_run["test"].parent / "images"
    pairs = [images / "000.jpg", images / "003.jpg"]
    model = Predictor.load(run, device="cpu")
    want = {str(p): model.probabilities(model.load_image(p)[None])[0] for p in pairs}
    argv = ["predict", "--run", str(run), *map(str, pairs), "--top-k", "1", "--out"]

    def check(rows: list[dict]) -> None:
        assert sorted(r["path"] for r in rows) == sorted(want)
        for row in rows:
            got = [float(row[f"prob_{name}"]) for name in CLASSES]
            np.testing.assert_allclose(got, want[row["path"]], atol=1e-5)

    assert main([*argv, str(tmp_path / "p.csv")]) == 0
    check(list(csv.DictReader((tmp_path / "p.csv").open())))
    capsys.readouterr()
    assert main([*argv, "-"]) == 0
    check(list(csv.DictReader(capsys.readouterr().out.splitlines())))
    # Parquet: a Ray worker's rows (its actor called here, without starting Ray), written
    # as `predict --engine ray` writes them
    worker = BatchPredictor(str(run), "torch", "cpu", False, 1, False, {})
    rows = [json.loads(text) for text in worker({"path": list(map(str, pairs))})["row"]]
    parquet = tmp_path / "p.parquet"
    columns = [*csv_header(model.meta, 1, worker.accepting), "digest"]
    PredictionSink(parquet, columns, "bundle").write(rows)
    check(pd.read_parquet(parquet).to_dict("records"))
