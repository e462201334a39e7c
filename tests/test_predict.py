import csv

import numpy as np
import pytest
from PIL import Image

from scenes.cli import main
from scenes.evaluation.loop import evaluate
from scenes.serve.predict import collect_images
from scenes.serve.predictor import Predictor

from conftest import make_folder, make_image

CLASSES = ["cat_a", "cat_b", "cat_c"]


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.load(trained_run)


def test_predictor_agrees_with_evaluate_on_the_same_images(trained_run, predictor, tmp_path):
    folder = make_folder(tmp_path / "holdout", CLASSES, 4, seed=3)
    result = evaluate(trained_run, data=folder, out=False)
    rows = predictor.predict_many([p["path"] for p in result.predictions], top_k=3)
    for expected, row in zip(result.predictions, rows, strict=True):
        assert row.error is None
        assert row.top[0][0] == expected["predicted"]
        for (label, prob), (exp_label, exp_prob) in zip(row.top, expected["top3"], strict=True):
            assert label == exp_label and prob == pytest.approx(exp_prob, abs=1e-5)


def test_predictions_are_sorted_probabilities_that_sum_to_one(predictor, tmp_path):
    path = make_image(tmp_path / "x.jpg", (220, 40, 40))
    top = predictor.predict(path, top_k=3)
    assert [label for label, _ in top] != [] and len(top) == 3
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-6)
    assert top[0][0] == "cat_a"  # the red class
    assert len(predictor.predict(path, top_k=1)) == 1


@pytest.mark.parametrize(
    "mode, suffix", [("L", ".png"), ("RGBA", ".png"), ("RGB", ".png"), ("RGB", ".webp")]
)
def test_any_image_kind_is_accepted(predictor, tmp_path, mode, suffix):
    path = make_image(tmp_path / f"img{suffix}", (40, 200, 40), mode=mode)
    top = predictor.predict(path)
    assert sum(p for _, p in top) == pytest.approx(1.0, abs=1e-6)
    image = Image.open(path)
    assert predictor.predict(image)[0] == pytest.approx(top[0])  # a PIL image works too


def test_predict_many_turns_a_bad_file_into_an_error_row(predictor, tmp_path):
    good = make_image(tmp_path / "good.jpg", (40, 40, 220))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    rows = predictor.predict_many([good, bad, good], batch_size=2)
    assert [r.error is None for r in rows] == [True, False, True]
    assert "bad.jpg" in rows[1].source and rows[1].top == []
    assert rows[0].top == rows[2].top


def test_onnx_backend_gives_the_same_probabilities(fresh_run, predictor, tmp_path):
    onnx_predictor = Predictor.load(fresh_run, backend="onnx")  # exports when missing
    folder = make_folder(tmp_path / "f", CLASSES, 2, seed=5)
    images, _, _ = predictor.load_images(collect_images([folder]))
    np.testing.assert_allclose(
        onnx_predictor.probabilities(images), predictor.probabilities(images), atol=1e-5
    )


def test_cli_predict_writes_csv_for_files_and_folders(trained_run, tmp_path, capsys):
    folder = make_folder(tmp_path / "photos", ["x", "y"], 3)
    (folder / "x" / "broken.jpg").write_text("oops")
    single = make_image(tmp_path / "single.png", (200, 40, 200))
    out = tmp_path / "preds.csv"
    assert (
        main(
            [
                "predict",
                "--run",
                str(trained_run),
                str(folder),
                str(single),
                "--out",
                str(out),
                "--top-k",
                "2",
            ]
        )
        == 1  # one file could not be read: its row says why, the exit code says so
    )
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and list(rows[0]) == [
        "path",
        "label_1",
        "prob_1",
        "label_2",
        "prob_2",
        "accepted",  # is it one of the known classes at all (the bundle's acceptance)
        "unknown_score",
        "error",
    ]
    broken = [r for r in rows if r["path"].endswith("broken.jpg")]
    assert broken and broken[0]["error"] and broken[0]["label_1"] == ""
    ok = [r for r in rows if not r["error"]]
    assert all(r["label_1"] in CLASSES and float(r["prob_1"]) >= float(r["prob_2"]) for r in ok)
    # without --out: a table on stdout
    assert main(["predict", "--run", str(trained_run), str(single)]) == 0
    assert "single.png" in capsys.readouterr().out
    assert main(["predict", "--run", str(trained_run), str(tmp_path / "missing.jpg")]) == 2


def test_device_option(trained_run, tmp_path, capsys):
    import torch

    from scenes.models.devices import resolve_device

    image = make_image(tmp_path / "x.jpg", (220, 40, 40))
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert main(["predict", "--run", str(trained_run), str(image), "--device", "cpu"]) == 0
    assert "cat_a" in capsys.readouterr().out
    out = str(tmp_path / "eval")  # not into the shared run: other tests read its eval/ folder
    assert main(["evaluate", "--run", str(trained_run), "--split", "val", "--out", out]) == 0
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(["predict", "--run", str(trained_run), str(image), "--device", "cuda"]) == 2
        assert "no CUDA GPU is available here; use --device cpu" in capsys.readouterr().err
    assert main(["predict", "--run", str(trained_run), str(image), "--device", "tpu9"]) == 2
    assert "unknown device 'tpu9'" in capsys.readouterr().err


def test_the_next_batch_decodes_while_this_one_is_used():
    import threading

    from scenes.serve.decoding import decoded_batches

    second_started = threading.Event()

    def load_images(chunk):
        if chunk[0] == 2:
            second_started.set()
        return np.zeros((len(chunk), 1, 1, 3), np.uint8), list(range(len(chunk))), {}

    batches = decoded_batches(load_images, [0, 1, 2, 3, 4], 2)
    chunk, pixels, ok, errors = next(batches)
    assert list(chunk) == [0, 1] and pixels.shape == (2, 1, 1, 3) and ok == [0, 1]
    # while the caller still holds the first batch, the second is already being decoded
    assert second_started.wait(5)
    assert [list(c) for c, *_ in batches] == [[2, 3], [4]]
    assert list(decoded_batches(load_images, [], 2)) == []


def test_a_part_left_half_written_by_a_kill_does_not_break_reading_the_folder(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scenes.atomic import temporary_sibling

    out = tmp_path / "preds.parquet"
    out.mkdir()
    pq.write_table(pa.table({"path": ["a.jpg"]}), out / "part-00000.parquet")
    # where scenes.atomic writes a part before its rename: a kill can leave it half written
    temporary_sibling(out / "part-00001.parquet").write_bytes(b"PAR1 cut short")
    assert pd.read_parquet(out)["path"].tolist() == ["a.jpg"]
