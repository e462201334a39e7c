"""`scenes ensemble`: one bundle that averages its members' probabilities, each member seeing
the photo as it was trained to; refused, naming why, when the runs cannot form one. (Every
serving path and format gives the ensemble's answers: test_one_answer's "ensemble" variant.)"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from scenes.cli import main
from scenes.errors import BundleError, UsageError
from scenes.models.bundle import read_meta
from scenes.models.ensemble_command import make_ensemble
from scenes.serve.predictor import Predictor

from conftest import make_folder


def member(trained_run, tmp_path, name: str, **changes):
    """A copy of the trained run whose model.json says ``changes`` (the weights stay)."""
    run = tmp_path / name
    shutil.copytree(trained_run, run)
    meta = json.loads((run / "model" / "model.json").read_text())
    meta.update(changes)
    (run / "model" / "model.json").write_text(json.dumps(meta))
    return run


@pytest.fixture
def photos(tmp_path):
    folder = make_folder(tmp_path / "photos", ["cat_a", "cat_b", "cat_c"], 4, size=(50, 40))
    return sorted(folder.rglob("*.jpg"))


def probabilities(run, photos):
    predictor = Predictor.load(run, device="cpu", accept_all=True)
    return predictor.probabilities(predictor.load_images(photos)[0])


def test_the_ensemble_answers_the_mean_of_its_members(trained_run, tmp_path, photos):
    tempered = member(trained_run, tmp_path, "tempered", temperature=2.5)
    bundle, meta, shared = make_ensemble([trained_run, tempered], tmp_path / "ens")
    assert meta.backend == "ensemble" and meta.format == 3 and shared
    alone = [probabilities(run, photos) for run in (trained_run, tempered)]
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # the temperature is applied per member
    together = probabilities(tmp_path / "ens", photos)
    np.testing.assert_allclose(together, (alone[0] + alone[1]) / 2, atol=1e-6)
    assert read_meta(bundle).members[1].temperature == 2.5


def test_members_of_other_sizes_and_normalisations_see_their_own_input(
    trained_run, tmp_path, photos
):
    """The trained 32 px member beside one that says 48 px with mean = std = 0.5: the photo
    is decoded once at 48 px; inside the graph the first member gets it resized to 32 px
    and the second renormalised, close to what each gets decoding on its own."""
    large = member(trained_run, tmp_path, "large", image_size=48, mean=[0.5] * 3, std=[0.5] * 3)
    _, meta, _ = make_ensemble([trained_run, large], tmp_path / "ens")
    assert meta.image_size == 48 and meta.mean == read_meta(trained_run).mean
    together = probabilities(tmp_path / "ens", photos)
    alone = [probabilities(run, photos) for run in (trained_run, large)]
    assert np.abs(together - (alone[0] + alone[1]) / 2).max() < 0.02
    # ... where skipping either step would show: the 48 px member normalised as the first
    same_norm = member(trained_run, tmp_path, "same", image_size=48)
    wrong = (alone[0] + probabilities(same_norm, photos)) / 2
    assert np.abs(together - wrong).max() > 0.02


def test_the_cli_writes_the_bundle_and_evaluates_it_on_the_shared_split(
    trained_run, tmp_path, capsys
):
    other = member(trained_run, tmp_path, "other", temperature=1.7)
    out = tmp_path / "ens"
    assert main(["ensemble", str(trained_run), str(other), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "2 members" in said and "--split val" in said
    assert (out / "split.csv").read_bytes() == (trained_run / "split.csv").read_bytes()
    assert main(["evaluate", "--run", str(out), "--split", "val", "--device", "cpu"]) == 0
    assert "top-1" in capsys.readouterr().out


def test_members_of_different_splits_get_no_validation_split(trained_run, tmp_path, capsys):
    other = member(trained_run, tmp_path, "other")
    (other / "split.csv").write_text((other / "split.csv").read_text().replace(",val", ",train"))
    out = tmp_path / "ens"
    assert main(["ensemble", str(trained_run), str(other), "--out", str(out)]) == 0
    assert "not trained on one split" in capsys.readouterr().out
    assert not (out / "split.csv").exists()


def test_explain_gives_a_heatmap_of_the_ensemble(trained_run, tmp_path, photos):
    make_ensemble([trained_run, member(trained_run, tmp_path, "b")], tmp_path / "ens")
    predictor = Predictor.load(tmp_path / "ens", device="cpu")
    top, heatmap = predictor.explain(photos[0])
    assert heatmap.shape == (32, 32) and 0.0 <= heatmap.min() <= heatmap.max() <= 1.0
    assert top == predictor.predict(photos[0])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"class_names": ["cat_a", "cat_c", "cat_b"]}, "other classes"),
        ({"resize": "crop"}, "resize photos differently"),
        (
            {"task": "multilabel", "thresholds": [0.5, 0.5, 0.5]},
            "multi-label: an ensemble's members are single multiclass models",
        ),
    ],
)
def test_runs_that_cannot_form_an_ensemble_are_refused(trained_run, tmp_path, changes, message):
    other = member(trained_run, tmp_path, "other", **changes)
    with pytest.raises(UsageError, match=message):
        make_ensemble([trained_run, other], tmp_path / "ens")
    assert not (tmp_path / "ens" / "model").exists()


def test_one_run_and_a_used_folder_are_refused(trained_run, tmp_path):
    with pytest.raises(UsageError, match="at least 2 runs"):
        make_ensemble([trained_run], tmp_path / "ens")
    make_ensemble([trained_run, trained_run], tmp_path / "ens")
    with pytest.raises(UsageError, match="already holds a model/"):
        make_ensemble([trained_run, trained_run], tmp_path / "ens")


def test_an_ensemble_description_is_validated(trained_run, tmp_path):
    make_ensemble([trained_run, trained_run], tmp_path / "ens")
    path = tmp_path / "ens" / "model" / "model.json"
    meta = json.loads(path.read_text())
    for broken, field in [
        ({"members": None}, "members are given exactly when"),
        ({"format": 2}, "an ensemble is bundle format 3"),
        (
            {"members": [meta["members"][0], {**meta, "members": meta["members"]}]},
            "member 1 is itself an ensemble",
        ),
    ]:
        path.write_text(json.dumps({**meta, **broken}))
        with pytest.raises(BundleError, match=field):
            read_meta(path.parent)


def test_the_ensemble_runs_on_other_photos_sizes(trained_run, tmp_path):
    """A photo larger than every member's size is decoded once, at the ensemble's size."""
    folder = make_folder(tmp_path / "big", ["cat_a"], 2, size=(300, 200))
    make_ensemble([trained_run, trained_run], tmp_path / "ens")
    predictor = Predictor.load(tmp_path / "ens", device="cpu")
    rows = predictor.predict_many(sorted(folder.rglob("*.jpg")))
    assert all(row.error is None and len(row.top) == 3 for row in rows)
