"""`scenes predict --engine ray`: the local engine's answers, from a pool of Ray Data workers;
a rerun after a kill writes every file exactly once; a killed worker loses nothing."""

from __future__ import annotations

import csv
import os
import shutil
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


def test_ray_gives_the_local_answers_and_error_rows(trained_run, tmp_path, capsys, ray_instance):
    folder = photos(tmp_path / "in", 10)
    (folder / "broken.jpg").write_text("not an image")
    local, remote = tmp_path / "local.csv", tmp_path / "preds.parquet"
    assert main(["predict", "--run", str(trained_run), str(folder), "--out", str(local)]) == 1
    argv = ["predict", "--run", str(trained_run), str(folder), "--out", str(remote)]
    assert main([*argv, "--engine", "ray", "--workers", "2", "--batch-size", "3"]) == 1
    assert "wrote 11 predictions" in capsys.readouterr().out
    expected = read_local(local)
    assert_same_rows(pd.read_parquet(remote), expected)

    # the same command again: the broken file is read again and fails again, as on the local
    # engine (exit 1, counted); the others are skipped; nothing is there twice
    assert main([*argv, "--engine", "ray", "--workers", "2"]) == 1
    said = capsys.readouterr().out
    assert "wrote 1 prediction to" in said and "10 files already there" in said
    assert "1 could not be read" in said
    assert len(pd.read_parquet(remote)) == 11

    # one photo changes: it is predicted again and its old row goes
    make_image(folder / "003.jpg", (250, 250, 20), seed=99)
    assert main([*argv, "--engine", "ray", "--workers", "1"]) == 1
    assert "wrote 2 predictions to" in capsys.readouterr().out
    table = pd.read_parquet(remote)
    assert sorted(table["path"]) == sorted(expected)
    assert table.loc[table["path"].str.endswith("003.jpg"), "digest"].nunique() == 1


def test_decoding_apart_as_for_gpu_workers_gives_the_same_rows(trained_run, tmp_path, ray_instance):
    from scenes.serve.predict import collect_images
    from scenes.serve.ray_jobs import RayEngine
    from scenes.serve.ray_predict import predict_with_ray

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
    # the decoders skip what is written; the broken file is read again, and fails again
    assert predict_with_ray(str(trained_run), files, str(remote), *arguments) == (1, 8, 1)


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


def test_a_killed_worker_is_replaced_and_nothing_is_lost(
    trained_run, tmp_path, capsys, ray_instance
):
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
    with PredictionSink(out, columns, "bundle-a") as first:
        first.write([["a.jpg", "sea", 0.9, "", "d1"], ["b.jpg", "sea", 0.8, "", "d2"]])
    with out.open("a") as fh:
        fh.write("c.jpg,sea,0.")  # the kill came here
    with PredictionSink(out, columns, "bundle-a") as again:
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


COLUMNS = ["path", "label_1", "prob_1", "error", "digest"]


def sink(out: Path) -> PredictionSink:
    return PredictionSink(out, COLUMNS, "bundle-a")


def rows_of(out: Path) -> list[tuple[str, str]]:
    """(path, digest) of every row, as pandas reads the file or folder."""
    table = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
    return list(zip(table["path"], table["digest"]))


@pytest.fixture(params=["preds.csv", "preds.parquet"])
def out(request, tmp_path) -> Path:
    return tmp_path / request.param


def test_an_error_row_is_not_done_and_is_read_again(out):
    with sink(out) as first:
        first.write([["a.jpg", "sea", 0.9, "", "d1"], ["b.jpg", "", "", "OSError: no", "d2"]])
        first.finish()
    with sink(out) as rerun:
        assert rerun.done == {"a.jpg": "d1"}  # b.jpg failed: predicted (and counted) again
        rerun.write([["b.jpg", "", "", "OSError: still no", "d2"]])
        rerun.finish()
    assert sorted(rows_of(out)) == [("a.jpg", "d1"), ("b.jpg", "d2")]


def test_a_kill_before_finish_leaves_each_file_once(out):
    with sink(out) as first:
        first.write([["a.jpg", "sea", 0.9, "", "d1"], ["b.jpg", "sea", 0.8, "", "d2"]])
        first.finish()
    with sink(out) as killed:  # a.jpg changed; the job dies before finish
        killed.write([["a.jpg", "glacier", 0.7, "", "d1-new"], ["c.jpg", "sea", 0.6, "", "d3"]])
    assert sorted(rows_of(out)) == [("a.jpg", "d1"), ("b.jpg", "d2"), ("c.jpg", "d3")]
    with sink(out) as rerun:
        assert rerun.done == {"a.jpg": "d1", "b.jpg": "d2", "c.jpg": "d3"}  # a.jpg: old digest
        rerun.write([["a.jpg", "glacier", 0.7, "", "d1-new"]])
        rerun.finish()
    assert sorted(rows_of(out)) == [("a.jpg", "d1-new"), ("b.jpg", "d2"), ("c.jpg", "d3")]


def test_a_file_written_twice_reads_back_last_one_wins(out):
    """As an older scenes left a changed file killed before finish: its old row, then its new
    one. The new one counts, and the next finish drops the old."""
    with sink(out) as first:
        first.write([["a.jpg", "sea", 0.9, "", "d1"], ["b.jpg", "sea", 0.8, "", "d2"]])
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(
            first.store.table([["a.jpg", "glacier", 0.7, "", "d1-new"]]), out / "part-00007.parquet"
        )
    else:
        with out.open("a") as fh:
            fh.write("a.jpg,glacier,0.7,,d1-new\n")
    with sink(out) as rerun:
        assert rerun.done == {"a.jpg": "d1-new", "b.jpg": "d2"}
        rerun.finish()
    assert sorted(rows_of(out)) == [("a.jpg", "d1-new"), ("b.jpg", "d2")]


def test_a_new_part_never_takes_the_number_of_one_there(tmp_path):
    out = tmp_path / "preds.parquet"
    with sink(out) as first:
        for i in range(3):
            first.write([[f"{i}.jpg", "sea", 0.9, "", f"d{i}"]])
    (out / "part-00000.parquet").unlink()  # a person deletes a part
    with sink(out) as rerun:
        rerun.write([["0.jpg", "sea", 0.9, "", "d0"]])
    assert sorted(p.name for p in out.glob("part-*")) == [
        "part-00001.parquet",
        "part-00002.parquet",
        "part-00003.parquet",
    ]
    assert sorted(rows_of(out)) == [("0.jpg", "d0"), ("1.jpg", "d1"), ("2.jpg", "d2")]


def test_a_second_job_on_one_out_is_refused_and_a_killed_one_blocks_nothing(
    out, trained_run, tmp_path, capsys
):
    photos(tmp_path / "in", 1)
    with sink(out):
        with pytest.raises(UsageError, match="being written by another"):
            sink(out)
        argv = ["predict", "--run", str(trained_run), str(tmp_path / "in"), "--out", str(out)]
        assert main([*argv, "--engine", "ray"]) == 2  # refused before Ray starts
        assert "being written by another `scenes predict --engine ray`" in capsys.readouterr().err
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from test_predict_ray import sink; s = sink({str(out)!r}); "
            "print('holding', flush=True); import time; time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    assert holder.stdout.readline() == "holding\n"
    with pytest.raises(UsageError, match="being written by another"):
        sink(out)
    holder.kill()
    holder.wait()
    with sink(out) as after:  # the OS released the dead job's lock
        after.write([["a.jpg", "sea", 0.9, "", "d1"]])


def test_ray_logits_features_load_the_file_the_driver_exported_and_never_export(
    trained_run, tmp_path, monkeypatch
):
    """8 workers exporting at once would calibrate 8 times and race on the same files: the
    driver exports once (export_for_workers), a worker only loads, and refuses a stale file."""
    import onnx

    from scenes.serve import formats
    from scenes.serve.formats import StaleExportError, default_path, recorded
    from scenes.serve.ray_jobs import export_for_workers
    from scenes.serve.ray_logits_features import LogitsWorker
    from scenes.serve.ray_predict import BatchPredictor

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    exports = []
    real_export = formats.export
    monkeypatch.setattr(
        formats, "export", lambda *a, **k: exports.append(a) or real_export(*a, **k)
    )
    path = default_path(run, "onnx")

    def workers(**export_path):
        yield lambda: BatchPredictor(str(run), "onnx", "cpu", False, 3, False, {}, **export_path)
        yield lambda: LogitsWorker(str(run), "onnx", "cpu", False, False, **export_path)

    for worker in workers():  # no file from the driver
        with pytest.raises(ValueError, match="exported"):
            worker()
    for worker in workers(export_path=str(path)):  # the driver's file is missing
        with pytest.raises(StaleExportError):
            worker()
    assert exports == [] and not path.exists()

    assert export_for_workers(run, "onnx") == str(path) and len(exports) == 1
    for worker in workers(export_path=str(path)):
        assert worker()  # loads, exports nothing
    graph = onnx.load(str(path))  # made by an older scenes: stale
    onnx.helper.set_model_props(graph, {**recorded(path, "onnx"), formats.VERSION_KEY: "2"})
    onnx.save(graph, str(path))
    for worker in workers(export_path=str(path)):
        with pytest.raises(StaleExportError):
            worker()
    assert len(exports) == 1
