import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from scenes.cli import main
from scenes.data.discover import list_labelled_files
from scenes.label_issues.command import default_out_dir
from scenes.label_issues.outputs import GRID_PNG, ISSUES_CSV, QUALITY_CSV, SUMMARY_MD
from scenes.label_issues.ranking import out_of_sample_probabilities, rank_label_issues
from scenes.models import features as features_module
from scenes.models.features import image_features, run_backbone
from scenes.plots import grid_pixel_size

from conftest import make_folder, needs_weights, real_subset

PLANTED = 10


def read_rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def plant_flips(data, source, target, count):
    """Move ``count`` images of class ``source`` into ``target``: their labels are now wrong."""
    moved = sorted((data / source).iterdir())[:count]
    for link in moved:
        link.rename(data / target / link.name)
    return {(data / target / link.name).absolute() for link in moved}


def fail_if_called(*args, **kwargs):
    raise AssertionError("the backbone ran although every image's features are cached")


@pytest.mark.real
@needs_weights
def test_planted_label_flips_rank_at_the_top(tmp_path, offline_weights, monkeypatch, capsys):
    data = real_subset(tmp_path / "data", per_class=100)
    planted = plant_flips(data, "forest", "sea", PLANTED)
    out = tmp_path / "issues"
    args = ["data", "issues", str(data), "--out", str(out), "--top", "20"]
    args += ["--set", "model.weights=IMAGENET1K_V1"]
    assert main(args) == 0
    printed = capsys.readouterr().out

    top = read_rows(out / ISSUES_CSV)
    assert list(top[0]) == ["path", "given", "suggested", "score"] and len(top) <= 20
    caught = [r for r in top if r["path"] in {str(p) for p in planted}]
    assert len(caught) >= 8, f"only {len(caught)} of {PLANTED} planted flips in the top 20"
    assert all(r["given"] == "sea" and r["suggested"] == "forest" for r in caught)
    scores = [float(r["score"]) for r in top]
    assert scores == sorted(scores)  # self-confidence ranking: least likely label first

    every = read_rows(out / QUALITY_CSV)
    assert len(every) == 600 and sum(r["rank"] != "" for r in every) >= len(top)
    with Image.open(out / GRID_PNG) as grid:
        assert grid.size == grid_pixel_size(min(25, len(top)), 5)  # the top suspects, 5 wide
    summary = (out / SUMMARY_MD).read_text()
    assert "sea → forest" in summary and "600 labelled images" in summary
    assert "sea → forest" in printed and f"data.exclude={out / ISSUES_CSV}" in printed

    # Features are cached by file content: relabelling one more image by moving it computes
    # no features at all, and the new flip is found too.
    monkeypatch.setattr(features_module, "embed", fail_if_called)
    planted |= plant_flips(data, "forest", "sea", 1)
    assert main(args) == 0
    again = read_rows(out / ISSUES_CSV)
    assert sum(r["path"] in {str(p) for p in planted} for r in again) >= 9


def test_feature_cache_is_keyed_by_content_and_weights(trained_run, tmp_path, monkeypatch):
    files = list_labelled_files(trained_run.parent / "data")
    cache = tmp_path / "cache"
    backbone = run_backbone(trained_run)
    first = image_features(files.paths, backbone, cache, progress=False)
    assert first.computed == len(files.paths) and first.features.shape[0] == len(files.paths)
    assert first.features.ndim == 2 and np.isfinite(first.features).all()
    # The first call decoded through the decoded-image cache (training at this size reads it).
    assert len(list(cache.glob("*.npy"))) == 1

    # The same weights again: read from the cache, equal to what the backbone gives.
    calls = []
    real_embed = features_module.embed
    monkeypatch.setattr(
        features_module, "embed", lambda *a, **k: calls.append(1) or real_embed(*a, **k)
    )
    second = image_features(files.paths, run_backbone(trained_run), cache, progress=False)
    assert second.computed == 0 and not calls
    np.testing.assert_array_equal(second.features, first.features)
    subset = image_features(files.paths[::2], run_backbone(trained_run), cache, progress=False)
    assert subset.computed == 0 and not calls and len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(subset.features, first.features[::2])

    # Other weights are another backbone: nothing reused.
    changed = run_backbone(trained_run)
    with torch.no_grad():
        next(changed.module.parameters()).add_(0.5)
    third = image_features(files.paths, changed, cache, progress=False)
    assert third.computed == len(files.paths) and calls
    assert not np.allclose(third.features, first.features)


def test_cross_validated_ranking_finds_flipped_labels():
    """Three well-separated Gaussian blobs, 8 labels flipped: cleanlab puts them first."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(3, 16))
    labels = np.repeat(np.arange(3), 60)
    features = centres[labels] + rng.normal(0, 1, size=(len(labels), 16))
    flipped = rng.choice(len(labels), 8, replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + 1) % 3
    probs = out_of_sample_probabilities(features, noisy, folds=5, seed=0, progress=False)
    assert probs.shape == (180, 3) and np.allclose(probs.sum(axis=1), 1)
    assert (probs.argmax(axis=1)[flipped] == labels[flipped]).all()
    ranked, scores = rank_label_issues(noisy, probs)
    assert set(ranked[:8].tolist()) == set(flipped.tolist())
    assert scores.shape == (180,) and scores[flipped].max() < np.median(scores)


def test_run_backbone_says_its_training_images_are_in_sample(trained_run, tmp_path, capsys):
    data = trained_run.parent / "data"
    out = tmp_path / "issues"
    args = ["data", "issues", str(data), "--run", str(trained_run), "--folds", "3"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with (trained_run / "split.csv").open(newline="") as fh:
        trained = sum(r["split"] == "train" for r in csv.DictReader(fh))
    assert f"Caution: {trained} of these images trained this run's model" in printed
    assert "fine-tuned in" in (out / SUMMARY_MD).read_text()
    assert len(read_rows(out / QUALITY_CSV)) == 36
    assert default_out_dir(data, str(trained_run)) == trained_run / "label_issues" / "data"
    assert default_out_dir(data, None).as_posix() == "label_issues/data"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--folds", "13"], "13-fold cross-validation needs at least 13 images per class"),
        (["--set", "model.pretrained=false"], "randomly initialised backbone"),
        (["--run", "no/such/run"], "no model bundle at no/such/run"),
        (["--set", "model.nmae=x"], "model.nmae: unknown field"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, capsys, extra, message):
    data = make_folder(tmp_path / "data", ["a", "b"], 12)
    assert main(["data", "issues", str(data), "--out", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_missing_folder(tmp_path, capsys):
    assert main(["data", "issues", str(tmp_path / "nothing")]) == 2
    assert f"data folder not found: {tmp_path / 'nothing'}" in capsys.readouterr().err


def test_cli_unreadable_images_are_skipped_and_named(trained_run, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(trained_run.parent / "data", data)
    (data / "cat_a" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "issues"
    with pytest.warns(UserWarning, match="broken.jpg"):
        code = main(["data", "issues", str(data), "--run", str(trained_run), "--out", str(out)])
    assert code == 0
    assert "1 unreadable file skipped" in (out / SUMMARY_MD).read_text()
    assert all("broken" not in r["path"] for r in read_rows(out / QUALITY_CSV))
