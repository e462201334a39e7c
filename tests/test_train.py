import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from scenes.cli import main
from scenes.config import load_config
from scenes.errors import DataError
from scenes.inference import BundleModel
from scenes.models import load_bundle
from scenes.training import train
from scenes.training.callbacks import COLUMNS
from scenes.training.schedules import lr_multiplier, warmup_cosine

from conftest import make_folder, tiny_train_config


def read_metrics(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)


def test_cli_train_writes_the_run_directory(data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--image-size",
            "32",
            "--batch-size",
            "8",
            "--no-pretrained",
            "--set",
            "train.progress_bar=false",
            "--set",
            "data.val_fraction=0.25",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "train loss" in printed and "val acc" in printed and "best epoch" in printed
    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == COLUMNS
    for r in rows:
        assert 0.0 <= float(r["val_acc"]) <= 1.0 and float(r["time_s"]) > 0
    assert load_config(out / "config.yaml").train.epochs == 2
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "model/model.json",
        "model/model.safetensors",
        "split.csv",
    ):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents*"))
    with (out / "split.csv").open() as fh:
        splits = [r["split"] for r in csv.DictReader(fh)]
    assert splits.count("val") == 9 and splits.count("train") == 27  # 25% of 12 per class
    # A second run into the same directory would destroy the first one: refused.
    assert main(["train", "--data", str(data), "--out", str(out), "--no-pretrained"]) == 2
    assert "already holds a run" in capsys.readouterr().err


class CrashAtEpoch(L.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_resume_continues_exactly_like_an_uninterrupted_run(data, tmp_path):
    overrides = {"train.epochs": 3, "augment.preset": "classic", "augment.p": 0.5}
    whole = train(tiny_train_config(data, tmp_path / "whole", **overrides))
    cfg = tiny_train_config(data, tmp_path / "broken", **overrides)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[CrashAtEpoch(2)])
    assert len(read_metrics(tmp_path / "broken")) == 2
    resumed = train(cfg, resume=tmp_path / "broken" / "checkpoints" / "last.ckpt")
    rows_whole, rows_resumed = read_metrics(whole.run_dir), read_metrics(resumed.run_dir)
    assert [r["epoch"] for r in rows_resumed] == ["1", "2", "3"]
    for a, b in zip(rows_whole, rows_resumed, strict=True):
        for key in COLUMNS[2:]:  # everything but wall time
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), key


def test_split_csv_holds_resolved_paths_usable_from_anywhere(tmp_path, monkeypatch, capsys):
    """A relative --data must not break `evaluate --split val` from another directory."""
    make_folder(tmp_path / "work" / "data", ["cat_a", "cat_b", "cat_c"], 8)
    monkeypatch.chdir(tmp_path / "work")
    train(tiny_train_config("data", tmp_path / "run", **{"train.epochs": 1}))
    with (tmp_path / "run" / "split.csv").open() as fh:
        paths = [row["path"] for row in csv.DictReader(fh)]
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--split", "val"]) == 0
    assert "evaluated 6 images" in capsys.readouterr().out


def test_resume_reads_the_split_instead_of_recomputing_it(data, tmp_path):
    cfg = tiny_train_config(data, tmp_path / "run", **{"train.epochs": 2})
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[CrashAtEpoch(1)])
    before = (tmp_path / "run" / "split.csv").read_text()
    # New images would change a recomputed split; the resumed run leaves them out.
    make_folder(data, ["cat_a", "cat_b", "cat_c"], 14, seed=5)
    with pytest.warns(UserWarning, match="added to the data since the run started"):
        train(cfg, resume=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (tmp_path / "run" / "split.csv").read_text() == before
    # An image the run trained on that is gone: refused, naming the way out.
    gone = next(data.rglob("000.jpg"))
    gone.unlink()
    cfg3 = tiny_train_config(data, tmp_path / "run", **{"train.epochs": 3})
    with pytest.raises(DataError, match="the data changed since the run started"):
        train(cfg3, resume=tmp_path / "run" / "checkpoints" / "last.ckpt")


def test_bundle_reproduces_the_best_checkpoint_logits(trained_run):
    ckpt = torch.load(
        trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False
    )
    module, meta = load_bundle(trained_run)
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    reference, _ = load_bundle(trained_run)
    reference.load_state_dict(state)
    x = torch.randn(5, 3, meta.image_size, meta.image_size)
    with torch.no_grad():
        assert torch.allclose(module(x), reference(x), atol=1e-6)
    # and the bundle alone (no config, no checkpoint) carries the class order and preprocessing
    model = BundleModel.load(trained_run / "model")
    assert model.class_names == ["cat_a", "cat_b", "cat_c"]
    assert model.meta.image_size == 32 and len(model.meta.mean) == 3


def test_head_mode_keeps_backbone_and_its_batchnorm_frozen(data, tmp_path):
    cfg = tiny_train_config(data, tmp_path / "head", **{"train.mode": "head", "train.epochs": 1})
    from scenes.models import build_model

    L.seed_everything(cfg.seed)
    initial = build_model("mobilenet_v2", 3, pretrained=False).module.state_dict()
    result = train(cfg)
    trained, _ = load_bundle(result.run_dir)
    after = trained.state_dict()
    assert torch.equal(after["features.0.0.weight"], initial["features.0.0.weight"])
    assert torch.equal(after["features.0.1.running_mean"], initial["features.0.1.running_mean"])
    assert not torch.equal(after["classifier.1.weight"], initial["classifier.1.weight"])


def test_fine_tune_unfreezes_after_head_epochs(data, tmp_path):
    seen = {}

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen[trainer.current_epoch] = pl_module.model.features[0][0].weight.requires_grad

    cfg = tiny_train_config(
        data, tmp_path / "ft", **{"train.mode": "fine_tune", "train.head_epochs": 1}
    )
    train(cfg, extra_callbacks=[Spy()])
    assert seen == {0: False, 1: True}


@pytest.mark.parametrize("scheduler", ["step", "plateau", "none"])
def test_other_schedules_train(data, tmp_path, scheduler):
    result = train(tiny_train_config(data, tmp_path / scheduler, **{"train.scheduler": scheduler}))
    assert len(read_metrics(result.run_dir)) == 2


def test_early_stopping_stops_when_the_monitor_stalls(data, tmp_path):
    cfg = tiny_train_config(
        data,
        tmp_path / "es",
        **{
            "train.epochs": 8,
            "train.lr": 1e-9,
            "train.patience": 1,
            "train.monitor": "val_acc",
        },
    )
    result = train(cfg)
    assert len(read_metrics(result.run_dir)) == 2  # no improvement after epoch 1, patience 1


def test_cosine_schedule_warms_up_then_decays():
    assert warmup_cosine(0.5, 10, 1) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 10, 1) == pytest.approx(1.0)
    assert warmup_cosine(10.0, 10, 1) == pytest.approx(0.0)
    cfg = load_config(
        sets=[
            "train.mode=fine_tune",
            "train.head_epochs=2",
            "train.epochs=6",
            "train.unfreeze_lr_factor=0.1",
            "train.warmup_epochs=0",
        ]
    ).train
    multiplier = lr_multiplier(cfg)
    assert multiplier(0.0) == pytest.approx(1.0)
    assert multiplier(1.99) < 0.01  # head phase decays to ~0
    assert multiplier(2.0) == pytest.approx(0.1)  # full phase restarts at lr * factor
    step = lr_multiplier(load_config(sets=["train.scheduler=step", "train.step_size=2"]).train)
    assert step(1.9) == 1.0 and step(2.0) == pytest.approx(0.1)
