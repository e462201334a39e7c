"""Distillation (train.teacher): the student learns from the teacher's soft predictions on the
same batches (live) or on each image un-augmented, answered once (cached); the teacher is
checked before any work and recorded, never stored. (Exact resume with a teacher, live and
cached: test_train's "distilled" cases.)"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors import safe_open
from test_train import read_metrics
from torch.utils.data import DataLoader

from scenes.cli import main
from scenes.config import default_cache_dir, load_config
from scenes.data.device_loader import DeviceBatches
from scenes.data.samplers import DecodedDataset, EpochShuffleSampler, LazyRows, WithRows
from scenes.data.transforms import normalize_batch
from scenes.errors import ConfigError, DataError, MissingPathError
from scenes.models.bundle import (
    load_bundle,
    read_meta,
    resolve_bundle_dir,
    save_bundle,
    save_meta,
)
from scenes.models.ensemble import averaging
from scenes.training import train
from scenes.training.distill import Distiller
from scenes.training.teacher_outputs import answers_key

from conftest import make_folder, tiny_train_config


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)


def test_the_loss_blends_labels_and_the_teachers_soft_targets(trained_run):
    module, meta = load_bundle(trained_run)
    teacher = averaging([module], [meta], meta.mean, meta.std, meta.image_size)
    x = torch.randn(4, 3, 32, 32)
    label_loss = torch.tensor(1.25)
    with torch.no_grad():
        agreeing = teacher(x)  # a student answering exactly the teacher's log-probabilities
    assert Distiller(teacher, 0.0, 4.0, []).loss(label_loss, agreeing, x) == label_loss
    assert Distiller(teacher, 1.0, 4.0, []).loss(label_loss, agreeing, x).abs() < 1e-5
    disagreeing = -agreeing
    for t in (1.0, 4.0):  # KL of softened distributions, scaled by T^2
        soft = Distiller(teacher, 1.0, t, []).loss(label_loss, disagreeing, x)
        expected = (
            torch.nn.functional.kl_div(
                torch.log_softmax(disagreeing / t, 1),
                torch.softmax(agreeing / t, 1),
                reduction="batchmean",
            )
            * t
            * t
        )
        assert soft > 0.01 and torch.isclose(soft, expected)
    half = Distiller(teacher, 0.5, 4.0, []).loss(label_loss, disagreeing, x)
    assert torch.isclose(half, 0.5 * label_loss + 0.5 * soft)


def test_a_distilled_run_records_its_teacher_and_stores_none_of_it(data, tmp_path, trained_run):
    cfg = tiny_train_config(
        data,
        tmp_path / "run",
        **{"model.name": "resnet18", "train.epochs": 1, "train.teacher": [str(trained_run)]},
    )
    result = train(cfg)
    meta = read_meta(result.run_dir)
    assert meta.training["teacher"] == str(trained_run)
    assert meta.training["distill_alpha"] == 0.5 and meta.training["distill_temperature"] == 4.0
    assert str(trained_run) in (result.run_dir / "config.yaml").read_text()
    with safe_open(str(result.run_dir / "model" / "model.safetensors"), "pt") as fh:
        student_keys = set(fh.keys())
    assert student_keys == set(load_bundle(result.run_dir)[0].state_dict())
    state = torch.load(result.best_checkpoint, weights_only=True, map_location="cpu")
    assert all(k.startswith(("model.", "loss_fn", "val_loss_fn")) for k in state["state_dict"])
    # the teacher shapes training: the same seed without it trains differently
    plain = train(
        tiny_train_config(data, tmp_path / "plain", **{"model.name": "resnet18", "train.epochs": 1})
    )
    distilled_row = read_metrics(result.run_dir)[0]
    plain_row = read_metrics(plain.run_dir)[0]
    assert distilled_row["train_loss"] != plain_row["train_loss"]


def test_a_teacher_of_other_classes_is_refused_before_decoding(tmp_path, trained_run):
    data = make_folder(tmp_path / "data", ["cat_a", "cat_b", "dog"], 8)
    cfg = tiny_train_config(data, tmp_path / "run", **{"train.teacher": [str(trained_run)]})
    with pytest.raises(DataError, match="train.teacher .* knows the classes cat_a, cat_b, cat_c"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_missing_teacher_names_itself(data, tmp_path):
    cfg = tiny_train_config(data, tmp_path / "run", **{"train.teacher": [str(tmp_path / "nope")]})
    with pytest.raises(MissingPathError, match="nope"):
        train(cfg)


def test_teacher_settings_are_validated(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,labels\n")
    with pytest.raises(ConfigError, match="train.teacher"):
        load_config(overrides={"data.labels": str(labels), "train.teacher": ["runs/a"]})
    with pytest.raises(ConfigError, match="distill_alpha"):
        load_config(sets=["train.distill_alpha=1.5"])
    with pytest.raises(ConfigError, match="distill_temperature"):
        load_config(sets=["train.distill_temperature=0"])
    assert load_config(sets=["train.teacher=runs/a,runs/b"]).train.teacher == ["runs/a", "runs/b"]
    assert json.dumps(load_config().train.teacher) == "[]"


def test_cached_answers_are_the_teachers_on_each_unaugmented_image(trained_run):
    module, meta = load_bundle(trained_run)
    teacher = averaging([module], [meta], meta.mean, meta.std, meta.image_size)
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (90, 32, 32, 3), dtype=np.uint8)
    pixels = LazyRows(stored, np.arange(3, 90, 2))  # 44 training rows of a larger cache
    cached = Distiller(teacher, 0.5, 4.0, [], cached=True)
    cached.answer_once(pixels, meta.mean, meta.std, batch=16)  # three batches, the last short
    assert cached.teacher is None and cached.answers.shape == (44, 3)
    rows = torch.tensor([43, 0, 17, 17, 5])
    images = torch.from_numpy(stored[3 + 2 * rows.numpy()]).permute(0, 3, 1, 2)
    x = normalize_batch(images, meta.mean, meta.std)
    logits, label_loss = torch.randn(5, 3), torch.tensor(0.8)
    live = Distiller(teacher, 0.5, 4.0, [])
    # row r's answer is the teacher's on image r, un-augmented: the live loss on those images
    assert torch.allclose(
        cached.loss(label_loss, logits, x, rows), live.loss(label_loss, logits, x)
    )
    flipped = x.flip(-1)  # an augmented view: live answers it, the cache keeps the image's
    assert torch.allclose(
        cached.loss(label_loss, logits, flipped, rows), live.loss(label_loss, logits, x)
    )
    assert not torch.allclose(
        live.loss(label_loss, logits, flipped), live.loss(label_loss, logits, x)
    )
    with pytest.raises(RuntimeError, match="batch rows"):
        cached.loss(label_loss, logits, x)


def test_training_batches_carry_their_images_rows_on_both_loaders():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).clone()
    labels = torch.arange(10) % 3
    sampler = EpochShuffleSampler(10, seed=3)
    on_device = list(DeviceBatches(images, labels, sampler, 4, with_rows=True))
    dataset = WithRows(DecodedDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy()))
    loaded = list(DataLoader(dataset, sampler=sampler, batch_size=4))
    assert [len(b[0]) for b in loaded] == [len(b[0]) for b in on_device] == [4, 4, 2]
    for (x_a, y_a, rows_a), (x_b, y_b, rows_b) in zip(on_device, loaded, strict=True):
        assert torch.equal(rows_a, rows_b) and torch.equal(x_a, x_b) and torch.equal(y_a, y_b)
        assert torch.equal(x_a, images[rows_a]) and torch.equal(y_a, labels[rows_a])
    assert sorted(torch.cat([b[2] for b in loaded]).tolist()) == list(range(10))


def test_a_cached_teacher_trains_differently_and_is_recorded(
    data, tmp_path, trained_run, caplog, capsys
):
    common = {"model.name": "resnet18", "train.epochs": 1, "train.teacher": [str(trained_run)]}
    with caplog.at_level(logging.INFO, logger="scenes.progress"):
        cached = train(
            tiny_train_config(
                data, tmp_path / "cached", **common, **{"train.teacher_outputs": "cached"}
            )
        )
    # one pass over the 27 training images (36, less the validation split's 9), and it shows
    passes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher out")]
    assert len(passes) == 1 and passes[0].startswith("teacher outputs: 27 images in ")
    # another run of the same data and teachers reads them from the cache folder: the same
    # seed then trains exactly as the run that computed them
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = train(
            tiny_train_config(
                data, tmp_path / "again", **common, **{"train.teacher_outputs": "cached"}
            )
        )
    passes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher out")]
    assert len(passes) == 1 and passes[0].startswith("teacher outputs: 27 images read from ")
    untimed = [
        {k: v for k, v in row.items() if k != "time_s"}
        for run in (again, cached)
        for row in read_metrics(run.run_dir)
    ]
    assert untimed[0] == untimed[1]
    # `scenes data cache` lists them beside the decoded images, and clears them
    cache = default_cache_dir()
    capsys.readouterr()  # the runs' output: only the listing is read below
    assert main(["data", "cache", "--dir", str(cache)]) == 0
    listed = capsys.readouterr().out
    teacher = resolve_bundle_dir(trained_run)
    assert listed.count("teacher outputs") == 1 and f"27 images answered by {teacher}" in listed
    assert main(["data", "cache", "--dir", str(cache), "--clear"]) == 0
    assert not [f for f in (cache / "teacher-outputs").iterdir() if f.is_file()]
    live = train(tiny_train_config(data, tmp_path / "live", **common))
    assert read_meta(cached.run_dir).training["teacher_outputs"] == "cached"
    assert read_meta(live.run_dir).training["teacher_outputs"] == "live"
    assert "teacher_outputs: cached" in (cached.run_dir / "config.yaml").read_text()
    # the augmented views are taught the un-augmented image's answer: another loss
    cached_row, live_row = read_metrics(cached.run_dir)[0], read_metrics(live.run_dir)[0]
    assert cached_row["train_loss"] != live_row["train_loss"]


def test_cached_teacher_outputs_refuse_mixed_images(tmp_path):
    with pytest.raises(ConfigError, match="teacher_outputs=cached .* MixUp/CutMix"):
        load_config(
            sets=["train.teacher=runs/a", "train.teacher_outputs=cached", "augment.mixup_alpha=0.2"]
        )
    # without a teacher the setting is idle, and mixing stays allowed
    assert load_config(sets=["train.teacher_outputs=cached", "augment.cutmix_alpha=1"])


def test_stored_answers_are_keyed_by_the_teachers_weights_and_the_rows(fresh_run, tmp_path):
    teacher = resolve_bundle_dir(fresh_run)
    stored = tmp_path / "decoded.npy"
    np.save(stored, np.zeros((6, 8, 8, 3), np.uint8))
    array = np.load(stored, mmap_mode="r")
    mean, std = [0.5] * 3, [0.5] * 3

    def key_of(rows=np.arange(4), mean=mean):
        return answers_key([teacher], LazyRows(array, rows), mean, std)

    key = key_of()
    assert key == key_of()
    assert key != key_of(np.arange(1, 5))
    assert key != key_of(mean=[0.4] * 3)
    # exports written into the teacher's model/ (and a refitted acceptance) keep the key
    assert main(["export", "--run", str(fresh_run), "--format", "onnx"]) == 0
    assert (teacher / "model.onnx").is_file()
    meta = read_meta(teacher)
    meta.acceptance.threshold /= 2
    save_meta(meta, teacher)
    assert key_of() == key
    # what changes its answers changes it: its temperature, or its weights (retrained in place)
    fitted = meta.temperature
    meta.temperature = fitted * 2
    save_meta(meta, teacher)
    assert key_of() != key
    meta.temperature = fitted
    save_meta(meta, teacher)
    assert key_of() == key
    module, _ = load_bundle(teacher)
    with torch.no_grad():
        next(module.parameters()).add_(0.01)
    save_bundle(module, meta, teacher)
    assert key_of() != key
    # pixels that are no rows of a cache file have no name across runs: nothing is stored
    assert answers_key([teacher], LazyRows(np.zeros((6, 8, 8, 3)), np.arange(4)), mean, std) is None
