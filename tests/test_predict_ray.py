"""`scenes predict --engine ray`: the local engine's answers, from a pool of Ray Data workers;
a rerun after a kill writes every file exactly once; a killed worker loses nothing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scenes.cli import main
from scenes.errors import UsageError
from scenes.serve.prediction_files import PredictionSink

from conftest import make_image

pytest.importorskip("ray")
pd = pytest.importorskip("pandas")


def photos(folder: Path, count: int) -> Path:
    for i in range(count):
        make_image(folder / f"{i:03d}.jpg", (30 + 7 * i % 200, 200 - 5 * i % 180, 90), seed=i)
    return folder


def read_local(path: Path) -> dict[str, dict]:
    with path.open(newline="") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def assert_same_rows(table, expected: dict[str, dict]) -> None:
    assert sorted(table["path"]) == sorted(expected)  # each file once
    for row in table.to_dict("records"):
        want = expected[row["path"]]
        if want["error"]:
            assert row["error"] and pd.isna(row["label_1"]) and row["path"].endswith("broken.jpg")
            continue
        assert pd.isna(row["error"]) and len(row["digest"]) == 64
        for k in (1, 2, 3):
            assert row[f"label_{k}"] == want[f"label_{k}"]
            assert row[f"prob_{k}"] == pytest.approx(float(want[f"prob_{k}"]), abs=1e-5)
        assert str(row["accepted"]) == want["accepted"]
        assert row["unknown_score"] == pytest.approx(float(want["unknown_score"]), abs=1e-4)


def test_ray_gives_the_local_answers_and_error_rows(trained_run, tmp_path, capsys):
    folder = photos(tmp_path / "in", 10)
    (folder / "broken.jpg").write_text("not an image")
    local, remote = tmp_path / "local.csv", tmp_path / "preds.parquet"
    assert main(["predict", "--run", str(trained_run), str(folder), "--out", str(local)]) == 1
    argv = ["predict", "--run", str(trained_run), str(folder), "--out", str(remote)]
    assert main([*argv, "--engine", "ray", "--workers", "2", "--batch-size", "3"]) == 1
    assert "wrote 11 predictions" in capsys.readouterr().out
    expected = read_local(local)
    assert_same_rows(pd.read_parquet(remote), expected)

    # the same command again: nothing to do (the broken file is the same bytes), nothing twice
    assert main([*argv, "--engine", "ray", "--workers", "2"]) == 0
    assert "wrote 0 predictions to" in capsys.readouterr().out
    assert len(pd.read_parquet(remote)) == 11

    # one photo changes: it is predicted again and its old row goes
    make_image(folder / "003.jpg", (250, 250, 20), seed=99)
    assert main([*argv, "--engine", "ray", "--workers", "1"]) == 0
    assert "wrote 1 prediction to" in capsys.readouterr().out
    table = pd.read_parquet(remote)
    assert sorted(table["path"]) == sorted(expected)
    assert table.loc[table["path"].str.endswith("003.jpg"), "digest"].nunique() == 1


def test_decoding_apart_as_for_gpu_workers_gives_the_same_rows(trained_run, tmp_path):
    from scenes.serve.predict import collect_images
    from scenes.serve.ray_engine import predict_with_ray
    from scenes.serve.ray_jobs import RayEngine

    folder = photos(tmp_path / "in", 8)
    (folder / "broken.jpg").write_text("not an image")
    local, remote = tmp_path / "local.csv", tmp_path / "apart.parquet"
    assert main(["predict", "--run", str(trained_run), str(folder), "--out", str(local)]) == 1
    files = collect_images([str(folder)])
    # one decoding worker and one model worker on the 2 CPUs, as a GPU job splits them
    engine = RayEngine(workers=1, split_decoding=True)
    arguments = (3, "torch", 3, "cpu", False, False, engine)
    assert predict_with_ray(str(trained_run), files, str(remote), *arguments) == (9, 0, 1)
    assert_same_rows(pd.read_parquet(remote), read_local(local))
    # the decoders skip what is written: a rerun writes nothing
    assert predict_with_ray(str(trained_run), files, str(remote), *arguments) == (0, 9, 0)


def test_a_killed_job_resumes_with_every_file_once(trained_run, tmp_path):
    folder = photos(tmp_path / "in", 40)
    out = tmp_path / "preds.parquet"
    argv = [sys.executable, "-m", "scenes", "predict", "--run", str(trained_run), str(folder)]
    argv += ["--out", str(out), "--engine", "ray", "--workers", "1", "--batch-size", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while len(list(out.glob("part-*.parquet"))) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no parts written: {proc.communicate()}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    proc.wait()
    before = len(pd.read_parquet(out))
    assert 0 < before < 40
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{before} files already there" in done.stdout
    table = pd.read_parquet(out)
    assert len(table) == 40 and table["path"].is_unique


def test_a_killed_worker_is_replaced_and_nothing_is_lost(trained_run, tmp_path, capsys):
    psutil = pytest.importorskip("psutil")
    folder = photos(tmp_path / "in", 30)
    out = tmp_path / "preds.csv"
    killed = []

    def kill_one_worker():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if out.is_file() and len(out.read_text().splitlines()) > 3:  # a batch is done
                for p in psutil.process_iter(["cmdline"]):
                    if "BatchPredictor" in " ".join(p.info["cmdline"] or []):
                        p.kill()
                        killed.append(p.pid)
                        break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    argv = ["predict", "--run", str(trained_run), str(folder), "--out", str(out)]
    assert main([*argv, "--engine", "ray", "--workers", "2", "--batch-size", "1"]) == 0
    killer.join(timeout=5)
    assert killed, "no worker was found to kill"
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [r["path"] for r in rows]
    assert len(paths) == 30 and len(set(paths)) == 30
    assert all(r["label_1"] and not r["error"] for r in rows)


def test_a_csv_cut_mid_row_drops_that_row(tmp_path):
    out = tmp_path / "preds.csv"
    columns = ["path", "label_1", "prob_1", "error", "digest"]
    sink = PredictionSink(out, columns, "bundle-a")
    sink.write([["a.jpg", "sea", 0.9, "", "d1"], ["b.jpg", "sea", 0.8, "", "d2"]])
    with out.open("a") as fh:
        fh.write("c.jpg,sea,0.")  # the kill came here
    again = PredictionSink(out, columns, "bundle-a")
    assert again.done == {"a.jpg": "d1", "b.jpg": "d2"}
    assert out.read_text().endswith("d2\n")
    with pytest.raises(UsageError, match="another model"):
        PredictionSink(out, columns, "bundle-b")
    with pytest.raises(UsageError, match="other columns"):
        PredictionSink(out, [*columns[:3], "label_2", *columns[3:]], "bundle-a")
    foreign = tmp_path / "mine.csv"
    foreign.write_text("path\n")
    with pytest.raises(UsageError, match="was not written by"):
        PredictionSink(foreign, columns, "bundle-a")


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--engine", "ray"], "give --out preds.parquet"),
        (["--engine", "ray", "--out", "-"], "give --out preds.parquet"),
        (["--workers", "2"], "are for --engine ray"),
        (["--engine", "ray", "--out", "p.parquet", "--compile"], "--compile is for --engine local"),
    ],
)
def test_ray_options_are_checked_first(trained_run, tmp_path, capsys, extra, says):
    assert main(["predict", "--run", str(trained_run), str(tmp_path), *extra]) == 2
    assert says in capsys.readouterr().err
