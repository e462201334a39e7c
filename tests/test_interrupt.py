"""An interruption keeps what was done: Ctrl-C in training leaves a model bundle from the best
epoch so far and the command to resume; an interrupted predict keeps its finished rows."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from scenes.cli import main
from scenes.serve.answers import PredictionRow
from scenes.serve.predictor import Predictor

from conftest import answer_ctrl_c, make_folder, make_image


def test_ctrl_c_in_training_writes_the_bundle_and_the_resume_command(tmp_path):
    data = make_folder(tmp_path / "data", ["a", "b", "c"], 12)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "scenes", "train", "--data", str(data), "--out", str(run)]
    argv += ["--epochs", "500", "--image-size", "32", "--batch-size", "8", "--no-pretrained"]
    argv += ["--set", "train.mode=full", "--set", "train.patience=1000"]
    env_cache = {"SCENES_CACHE": str(tmp_path / "cache")}
    import os

    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env_cache},
        preexec_fn=answer_ctrl_c,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # two epochs done: a best and a last checkpoint exist
        metrics = run / "metrics.csv"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()}")
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("training did not finish two epochs in time")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    last = run / "checkpoints" / "last.ckpt"
    assert f"scenes train --resume {last}" in err
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["class_names"] == ["a", "b", "c"]
    assert "model bundle written from the best epoch so far" in err
    # the bundle serves
    photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
    assert len(Predictor.load(run, device="cpu").predict(photo)) == 3


def test_an_interrupted_predict_keeps_the_rows_it_finished(
    trained_run, tmp_path, monkeypatch, capsys
):
    photos = [make_image(tmp_path / f"{i}.jpg", (220, 40, 40), seed=i) for i in range(6)]

    def three_then_ctrl_c(self, sources, top_k=3, *args, **kwargs):
        for source in sources[:3]:
            yield PredictionRow(str(source), self.predict(source, top_k))
        raise KeyboardInterrupt

    monkeypatch.setattr(Predictor, "iter_predictions", three_then_ctrl_c)
    out = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(trained_run), *map(str, photos), "--out", str(out)]) == 130
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [str(p) for p in photos[:3]]
    assert all(r["label_1"] and float(r["prob_1"]) > 0 for r in rows)


def test_predict_exits_1_when_a_file_could_not_be_read(trained_run, tmp_path, capsys):
    good = make_image(tmp_path / "good.jpg", (220, 40, 40))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main(["predict", "--run", str(trained_run), str(good)]) == 0
    capsys.readouterr()
    assert main(["predict", "--run", str(trained_run), str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "1 could not be read" in out
    csv_out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(trained_run), str(bad), "--out", str(csv_out)]) == 1
    assert "1 could not be read" in capsys.readouterr().out
