"""`scenes evaluate --engine ray` and `scenes data issues --engine ray`: the local engine's
numbers, computed by a pool of Ray Data workers (unreadable files included)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from scenes.cli import main
from scenes.data.discover import list_labelled_files
from scenes.errors import UsageError
from scenes.models.features import image_features, run_backbone
from scenes.serve.ray_jobs import RayEngine, engine_from_options

from conftest import make_folder

pytest.importorskip("ray")
CLASSES = ["cat_a", "cat_b", "cat_c"]


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_on_ray_gives_the_local_metrics_and_rows(trained_run, tmp_path, ray_instance):
    data = make_folder(tmp_path / "test", CLASSES, 5, seed=3)
    (data / "cat_b" / "broken.jpg").write_bytes(b"not an image")
    base = ["evaluate", "--run", str(trained_run), "--data", str(data), "--batch-size", "4"]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    ray_args = ["--engine", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]
    assert main([*base, *ray_args]) == 0

    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    remote = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert local.keys() == remote.keys()
    for key, value in local.items():
        if isinstance(value, float):
            assert remote[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert remote[key] == value, key
    assert list(remote["skipped"]) == [str(data / "cat_b" / "broken.jpg")]

    expected = {r["path"]: r for r in rows(tmp_path / "local" / "predictions.csv")}
    got = rows(tmp_path / "ray" / "predictions.csv")
    assert [r["path"] for r in got] == list(expected)  # the same order: the folder's
    assert len(got) == 15  # the broken file is skipped on both engines
    for row in got:
        want = expected[row["path"]]
        assert row["predicted"] == want["predicted"] and row["true"] == want["true"]
        assert float(row["confidence"]) == pytest.approx(float(want["confidence"]), abs=1e-5)


def test_issue_features_on_ray_equal_the_local_ones(trained_run, tmp_path, ray_instance):
    from scenes.serve.ray_logits_features import features_with_ray

    data = make_folder(tmp_path / "data", CLASSES, 4, seed=5)
    (data / "cat_a" / "broken.jpg").write_bytes(b"\x89PNG truncated")
    files = list_labelled_files(data)
    backbone = run_backbone(trained_run)
    local = image_features(files.paths, backbone, None, progress=False, device="cpu")
    calls = []

    def on_ray(paths):
        calls.append(len(paths))
        return features_with_ray(paths, backbone, 3, "cpu", RayEngine(workers=2))

    remote = image_features(files.paths, backbone, None, progress=False, compute=on_ray)
    assert calls == [13]  # every content once, the broken file included
    np.testing.assert_array_equal(remote.kept, local.kept)
    assert remote.digests == local.digests and remote.computed == local.computed == 12
    np.testing.assert_allclose(remote.features, local.features, atol=1e-5)
    assert remote.failed.keys() == local.failed.keys() == {str(data / "cat_a" / "broken.jpg")}


def test_data_issues_on_ray_ranks_as_the_local_engine(trained_run, tmp_path, capsys, ray_instance):
    data = trained_run.parent / "data"
    results = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        args = ["data", "issues", str(data), "--run", str(trained_run), "--out", str(out)]
        args += ["--set", f"data.cache_dir={tmp_path / engine / 'cache'}", "--engine", engine]
        assert main(args) == 0
        results[engine] = rows(out / "label_quality.csv")
    printed = capsys.readouterr()
    assert "backbone features (ray): 36 images" in printed.out + printed.err
    assert [r["path"] for r in results["ray"]] == [r["path"] for r in results["local"]]
    for mine, theirs in zip(results["ray"], results["local"]):
        assert mine["rank"] == theirs["rank"]
        assert float(mine["score"]) == pytest.approx(float(theirs["score"]), abs=1e-4)


@pytest.mark.parametrize(
    "engine, options, says",
    [
        ("local", {"workers": 2}, "are for --engine ray"),
        ("local", {"address": "auto"}, "are for --engine ray"),
        ("ray", {"gpus_per_worker": -1}, "--gpus-per-worker must be 0 or more"),
    ],
)
def test_engine_options_are_checked(engine, options, says):
    arguments = {"address": None, "workers": None, "gpus_per_worker": 0.0, **options}
    with pytest.raises(UsageError, match=says):
        engine_from_options(engine, **arguments)


def test_evaluate_refuses_ray_options_without_ray_before_loading(trained_run, tmp_path, capsys):
    data = make_folder(tmp_path / "test", CLASSES, 2)
    argv = ["evaluate", "--run", str(trained_run), "--data", str(data), "--workers", "2"]
    assert main(argv) == 2
    assert "--engine ray" in capsys.readouterr().err
