"""Distillation (train.teacher): the student learns from the teacher's soft predictions on the
same batches; the teacher is checked before any work and recorded, never stored. (Exact resume
with a teacher: test_train's "distilled" case.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from test_train import read_metrics

from scenes.config import load_config
from scenes.errors import ConfigError, DataError, MissingPathError
from scenes.models.bundle import load_bundle, read_meta
from scenes.models.ensemble import averaging
from scenes.training import train
from scenes.training.distill import Distiller

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
