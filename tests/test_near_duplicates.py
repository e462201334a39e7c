"""Near-duplicates: ``data check --near`` groups planted copies of real photos, and
``evaluate`` counts evaluated photos that are copies of the run's training images."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from scenes.cli import main
from scenes.evaluation.loop import evaluate
from scenes.evaluation.outputs import format_result
from scenes.evaluation.report import headline
from scenes.models.near import NEAR_DISTANCE, near_distance, near_pairs
from scenes.rundir import RunDir

from conftest import CLASSES, INTEL_TRAIN, needs_intel, needs_weights

pytestmark = [needs_intel, needs_weights]


def near_copy(source: Path, dest: Path) -> Path:
    """Re-encoded at JPEG quality 60, cropped by 4% on each side, resized, brightened."""
    with Image.open(source) as image:
        w, h = image.size
        copy = image.convert("RGB").crop((6, 6, w - 6, h - 6)).resize((120, 120))
    dest.parent.mkdir(parents=True, exist_ok=True)
    ImageEnhance.Brightness(copy).enhance(1.15).save(dest, "JPEG", quality=60)
    return dest


def real_photo(cls: str, index: int) -> Path:
    return sorted((INTEL_TRAIN / cls).iterdir())[index]


@pytest.fixture
def planted(tmp_path) -> Path:
    """train/: one photo of each of four classes and an exact copy of the first; test/: a near
    copy of the sea photo under another label (a conflict across splits)."""
    root = tmp_path / "dataset"
    for cls in CLASSES[:4]:
        (root / "train" / cls).mkdir(parents=True)
        (root / "train" / cls / "photo.jpg").symlink_to(real_photo(cls, 3))
    (root / "train" / "buildings" / "again.jpg").write_bytes(
        real_photo("buildings", 3).read_bytes()
    )
    near_copy(real_photo("glacier", 3), root / "test" / "mountain" / "copy.jpg")
    return root


def test_near_copy_is_grouped_and_unrelated_photos_are_not(
    planted, tmp_path, capsys, offline_weights
):
    out = tmp_path / "out"
    assert main(["data", "check", str(planted), "--near", "--out", str(out)]) == 1
    with (out / "duplicates.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["group", "path", "split", "label", "kind", "distance", "conflict"]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    by_members = {frozenset(r["path"] for r in g): g for g in groups.values()}
    near = by_members.pop(frozenset({"train/glacier/photo.jpg", "test/mountain/copy.jpg"}))
    exact = by_members.pop(frozenset({"train/buildings/photo.jpg", "train/buildings/again.jpg"}))
    assert not by_members, f"unrelated photos grouped: {by_members}"  # forest, mountain alone
    assert {r["kind"] for r in near} == {"near"} and {r["conflict"] for r in near} == {"true"}
    assert {r["kind"] for r in exact} == {"exact"} and {r["conflict"] for r in exact} == {"false"}
    assert 0 < max(float(r["distance"]) for r in near) < 0.5
    assert (out / "duplicates.png").stat().st_size > 10_000
    text = capsys.readouterr().out
    assert (
        "2 groups (1 with a near copy), 1 within a split, 1 across splits, 1 with conflicting labels"
        in text
    )


def test_a_pair_is_near_only_when_both_measures_vouch_for_it():
    """Close features with half the pHash bits differing (two sunsets), or equal hashes with
    distant features (two dark photos), are not near; a copy close by both is."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=64).astype(np.float32)
    base /= np.linalg.norm(base)

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    close = unit(base + 0.3 * unit(rng.normal(size=64)))  # cosine distance about 0.04
    far = unit(rng.normal(size=64))  # about 1
    bits = rng.random(64) < 0.5
    flipped = bits.copy()
    flipped[:32] ^= True  # 32 of 64 bits differ: +0.25
    few = bits.copy()
    few[:4] ^= True  # 4 differ: +0.03
    features = np.stack([base, close, close, far])
    hashes = np.stack([bits, flipped, few, bits])
    pairs = near_pairs(features, hashes)
    assert [(int(i), int(j)) for i, j, _ in pairs] == [(0, 2)]
    expected = near_distance(features[[0]], features[[2]], hashes[[0]], hashes[[2]])[0]
    assert pairs[0, 2] == pytest.approx(expected)
    assert 0.03 < expected <= NEAR_DISTANCE
    # A block boundary between the two members changes nothing.
    with patch("scenes.models.near.PAIR_BLOCK", 1):
        assert near_pairs(features, hashes) == pytest.approx(pairs, abs=1e-6)


def test_out_without_near_is_refused(planted, tmp_path, capsys):
    assert main(["data", "check", str(planted), "--out", str(tmp_path / "o")]) == 2
    assert "--near" in capsys.readouterr().err


def test_evaluate_counts_copies_of_training_images(fresh_run, tmp_path, offline_weights):
    training = [r.path for r in RunDir(fresh_run).read_split() if r.split == "train"]
    folder = tmp_path / "test"
    leaked = folder / training[0].parent.name / "leaked.png"  # a resized copy (40 to 64 px)
    leaked.parent.mkdir(parents=True)
    with Image.open(training[0]) as image:
        image.convert("RGB").resize((64, 64)).save(leaked)
    for cls, index in (("cat_a", 0), ("cat_b", 1), ("cat_c", 2)):  # real photos: no copies
        (folder / cls).mkdir(parents=True, exist_ok=True)
        (folder / cls / "photo.jpg").symlink_to(real_photo(CLASSES[index], 5))
    result = evaluate(fresh_run, data=folder, out=tmp_path / "eval", leakage=True)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["near_duplicates_of_training"] == 1
    assert [f["path"] for f in metrics["near_duplicate_files"]] == [str(leaked)]
    assert metrics["near_duplicate_files"][0]["training_path"] == str(training[0])
    others = [p for p in result.predictions if p["path"] != str(leaked)]
    expected = sum(p["predicted"] == p["true"] for p in others) / len(others)
    assert metrics["accuracy_without_near_duplicates"] == pytest.approx(expected)
    warning = "near-duplicates of the run's training images among the evaluated images: 1"
    assert warning in format_result(result)
    assert "Warning: 1 of these images are near-duplicates" in headline(metrics)


def test_review_shows_each_queued_photos_near_duplicates_with_their_labels(
    planted, fresh_run, tmp_path, monkeypatch, capsys, offline_weights
):
    """`scenes review --near DIR`: the queued copy is shown its original under another label
    (a conflict), an exact copy is called exact, and a photo without copies none."""
    from scenes.review import command

    copy = planted / "test" / "mountain" / "copy.jpg"
    alone = planted / "train" / "forest" / "photo.jpg"
    predictions = tmp_path / "predictions.csv"
    predictions.write_text(
        "path,true,predicted,confidence\n"
        f"{copy},mountain,glacier,0.9\n{alone},forest,sea,0.8\n"
        f"{planted / 'train/buildings/again.jpg'},buildings,street,0.7\n"
    )
    sessions, build_page = [], command.build_review_page

    def build(session):
        sessions.append(session)
        return build_page(session)

    monkeypatch.setattr(command, "build_review_page", build)
    monkeypatch.setattr(command, "serve_review", lambda *args, **kwargs: "")
    argv = ["review", "--run", str(fresh_run), "--queue", "mistakes"]
    argv += ["--predictions", str(predictions), "--near", str(planted)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"2 queued photos with near-duplicates in {planted}, 1 of them labelled otherwise" in out
    (session,) = sessions
    # queued paths are resolved: the symlinked photo is known by its target's name
    by_name = {
        name: [item.path for item in session.items].index(path.resolve())
        for name, path in (
            ("copy.jpg", copy),
            ("photo.jpg", alone),
            ("again.jpg", planted / "train" / "buildings" / "again.jpg"),
        )
    }
    original = session.near(by_name["copy.jpg"])
    assert [(n.path.name, n.label, n.split, n.kind) for n in original] == [
        ("photo.jpg", "glacier", "train", "near")
    ]
    assert "labelled glacier (**labels differ**" in session.near_text(by_name["copy.jpg"])
    ((pixels, caption),) = session.near_photos(by_name["copy.jpg"])
    assert (
        pixels.shape == (150, 150, 3)
        and caption == "glacier (train), near: train/glacier/photo.jpg"
    )
    exact = session.near(by_name["again.jpg"])
    assert [(n.path.name, n.kind) for n in exact] == [("photo.jpg", "exact")]
    assert "labels differ" not in session.near_text(by_name["again.jpg"])
    assert session.near(by_name["photo.jpg"]) == []
    assert session.near_text(by_name["photo.jpg"]) == f"near-duplicates: none in {planted}"

    # The page's first view hands the thumbnails to its gallery, which takes them as they are.
    page = build_page(session)
    (opening,) = [f for f in page.fns.values() if f.name == "opening"]
    shown = opening.fn()
    gallery = next(b for b in page.blocks.values() if getattr(b, "elem_id", "") == "review-near")
    assert session.items[shown[0]].path.name == "copy.jpg"  # the most confident mistake
    assert len(gallery.postprocess(shown[-1]).root) == 1


def test_review_without_near_says_near_duplicates_were_not_looked_for(trained_run, tmp_path):
    from scenes.review.decisions import DecisionStore
    from scenes.review.queues import QueueItem
    from scenes.review.session import ReviewSession
    from scenes.serve.predictor import Predictor

    photo = next((trained_run.parent / "data" / "cat_a").iterdir())
    item = QueueItem(photo, "cat_a", "issues", 1, 0.1, "label issue #1")
    session = ReviewSession(Predictor.load(trained_run), [item], DecisionStore(tmp_path / "r"))
    assert session.near(0) == [] and session.near_photos(0) == []
    assert session.near_text(0) == "near-duplicates: not looked for (add --near DIR)"
