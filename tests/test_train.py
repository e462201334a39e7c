import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from scenes.cli import main
from scenes.config import load_config
from scenes.errors import ConfigError, DataError
from scenes.models import load_bundle
from scenes.rundir import METRICS_COLUMNS as COLUMNS
from scenes.rundir import RunDir, SplitRow
from scenes.serve.predictor import Predictor
from scenes.training import train
from scenes.training.schedules import lr_multiplier, warmup_cosine

from conftest import PALETTE, make_folder, make_image, tiny_train_config


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
    # top-1 over the validation images: a whole number of them right, not a per-class mean
    n_val = sum(row.split == "val" for row in RunDir(out).read_split())
    for r in rows:
        right = float(r["val_acc"]) * n_val
        assert right == pytest.approx(round(right), abs=1e-4) and float(r["time_s"]) > 0
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


RESUME_CASES = {
    # full fine-tuning, per-step cosine schedule, augmentation drawn per sample
    "full-cosine": ({"train.epochs": 3, "augment.preset": "classic", "augment.p": 0.5}, 2, 3),
    # head phase, then everything under a plateau schedule (its state lives in the checkpoint)
    "fine_tune-plateau": (
        {
            "train.epochs": 4,
            "train.mode": "fine_tune",
            "train.head_epochs": 1,
            "train.scheduler": "plateau",
            "train.plateau_patience": 0,
            "augment.preset": "trivialaugment",
        },
        2,
        4,
    ),
    # EMA of the weights (from the full phase on) and MixUp/CutMix batches
    "fine_tune-ema-mixing": (
        {
            "train.epochs": 4,
            "train.mode": "fine_tune",
            "train.head_epochs": 1,
            "train.ema_decay": 0.9,
            "augment.mixup_alpha": 0.4,
            "augment.cutmix_alpha": 1.0,
        },
        2,
        4,
    ),
    # a stop inside early stopping's patience window: the counter must survive the resume;
    # the crashed run is moved to another folder first (a copied run): the best score so far
    # must survive it too, or the first epoch after the resume would count as the best
    "early-stop-window": (
        {"train.epochs": 6, "train.lr": 1e-9, "train.monitor": "val_acc", "train.patience": 2},
        3,  # best epoch 2, epoch 3 no better: the crash comes with the counter at 1 of 2
        4,
    ),
    # images on the device, batches drawn there (data.on_device); the uninterrupted run uses
    # the DataLoader: both paths must give the same batches, before and after a resume
    "on-device": ({"train.epochs": 3, "augment.preset": "classic", "augment.p": 0.5}, 2, 3),
    # distillation from a trained run (train.teacher is set in the test): the teacher's
    # targets on the mixed batches must be the same after the resume
    "distilled": (
        {"train.epochs": 3, "train.distill_alpha": 0.7, "augment.mixup_alpha": 0.4},
        2,
        3,
    ),
    # the teacher's answers cached per image, looked up by each batch's rows; the resumed run
    # draws its batches on the device, the uninterrupted one through the DataLoader
    "distilled-cached": (
        {"train.epochs": 3, "train.distill_alpha": 0.7, "train.teacher_outputs": "cached"},
        2,
        3,
    ),
}


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("resume") / "data", ["cat_a", "cat_b", "cat_c"], 12)


@pytest.fixture(scope="module")
def uninterrupted_run(resume_data, tmp_path_factory):
    """The uninterrupted run of a recipe, trained once per module: the resume cases that differ
    only in how the resumed run is fed (on-device) compare with the same baseline."""
    runs = {}

    def run_of(overrides: dict):
        key = json.dumps(overrides, sort_keys=True)
        if key not in runs:
            out = tmp_path_factory.mktemp("whole") / "run"
            runs[key] = train(tiny_train_config(resume_data, out, **overrides))
        return runs[key]

    return run_of


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_continues_exactly_like_an_uninterrupted_run(
    resume_data, uninterrupted_run, tmp_path, case, trained_run
):
    data = resume_data
    overrides, crash_epoch, epochs_run = RESUME_CASES[case]
    # resnet18 at 32 px learns the colours: validation logits differ between images and epochs
    overrides = {"model.name": "resnet18", **overrides}
    if case.startswith("distilled"):
        overrides["train.teacher"] = [str(trained_run)]
    whole = uninterrupted_run(overrides)
    if case in ("on-device", "distilled-cached"):
        overrides["data.on_device"] = True
    cfg = tiny_train_config(data, tmp_path / "broken", **overrides)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[CrashAtEpoch(crash_epoch)])
    assert len(read_metrics(tmp_path / "broken")) == crash_epoch
    run = tmp_path / "broken"
    if case == "early-stop-window":
        run = shutil.move(run, tmp_path / "moved")
        cfg = tiny_train_config(data, run, **overrides)
    resumed = train(cfg, resume=run / "checkpoints" / "last.ckpt")
    rows_whole, rows_resumed = read_metrics(whole.run_dir), read_metrics(resumed.run_dir)
    assert len(rows_whole) == epochs_run
    assert [r["epoch"] for r in rows_resumed] == [str(e) for e in range(1, epochs_run + 1)]
    for a, b in zip(rows_whole, rows_resumed, strict=True):
        for key in COLUMNS[2:]:  # everything but wall time
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), key
    assert resumed.best_epoch == whole.best_epoch
    if case != "early-stop-window":  # there the weights barely move, on purpose
        assert len({r["val_loss"] for r in rows_whole}) == epochs_run
        from scenes.evaluation.loop import evaluate

        logits = evaluate(resumed.run_dir, split="val", out=False, device="cpu").logits
        assert logits.std(axis=0).min() > 1e-3  # the model tells images apart


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
    for name, color in zip(["cat_a", "cat_b", "cat_c"], PALETTE):
        make_image(data / name / "new.jpg", color, seed=5)
    with pytest.warns(UserWarning, match="added to the data since the run started"):
        train(cfg, resume=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (tmp_path / "run" / "split.csv").read_text() == before
    # An image the run trained on that changed since (same name, other pixels), or is gone:
    # refused before any work, naming each file and the way out.
    listed = [row.path for row in RunDir(tmp_path / "run").read_split()]
    changed, gone = listed[0], listed[-1]
    make_image(changed, (0, 0, 0), seed=7)
    gone.unlink()
    cfg3 = tiny_train_config(data, tmp_path / "run", **{"train.epochs": 3})
    with pytest.raises(DataError, match="the data changed since the run started") as refused:
        train(cfg3, resume=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert f"{changed} (changed)" in str(refused.value)
    assert f"{gone} (vanished)" in str(refused.value)
    assert len(read_metrics(tmp_path / "run")) == 2  # nothing was trained


def test_split_csv_records_size_and_time_and_reads_older_files(tmp_path):
    from scenes.training.resume import check_same_files

    files = [make_image(tmp_path / "data" / f"{i}.jpg", (9, 9, 9), seed=i) for i in range(6)]
    run = RunDir(tmp_path / "run")
    run.write_split(SplitRow(p, "a", "train") for p in files)
    rows = run.read_split()
    assert [(r.size, r.mtime_ns) for r in rows] == [
        (p.stat().st_size, p.stat().st_mtime_ns) for p in files
    ]
    check_same_files(rows, run.split_csv)  # nothing changed: no error
    for p in files[:5]:
        p.write_bytes(p.read_bytes() + b"more")
    with pytest.raises(DataError, match=r"5 files listed .* changed .*\(changed\) and 2 more"):
        check_same_files(rows, run.split_csv)
    # A split.csv written before sizes were recorded: read, and checked by path and label only.
    run.split_csv.write_text(f"path,label,split\n{files[0]},a,train\n")
    older = run.read_split()
    assert older == [SplitRow(files[0], "a", "train")]
    check_same_files(older, run.split_csv)


def test_run_files_are_replaced_whole_when_a_writer_fails(tmp_path, monkeypatch):
    """Trimming metrics.csv on resume, or writing split.csv, that fails half-way leaves the
    old file whole and no temporary file behind."""
    import scenes.rundir as rundir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for epoch in (1, 2, 3):
        run.append_metrics({"epoch": epoch, "val_loss": 0.5})
    run.write_split([SplitRow(tmp_path / "a.jpg", "a", "train")])
    metrics, split = run.metrics_csv.read_text(), run.split_csv.read_text()

    def full_disk(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(rundir.csv.DictWriter, "writerows", full_disk)
    monkeypatch.setattr(rundir.SafeWriter, "writerow", full_disk)
    with pytest.raises(OSError):
        run.trim_metrics(last_epoch=2)
    with pytest.raises(OSError):
        run.write_split([SplitRow(tmp_path / "b.jpg", "b", "val")])
    assert run.metrics_csv.read_text() == metrics and run.split_csv.read_text() == split
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.csv", "split.csv"]
    monkeypatch.undo()
    run.trim_metrics(last_epoch=2)
    assert [row["epoch"] for row in run.read_metrics()] == [1.0, 2.0]


@pytest.fixture(scope="module")
def crashed_run(tmp_path_factory):
    """One run stopped by a crash after its first epoch of two, shared by the resume tests
    that are refused before any work (they leave it as it was) or copy it."""
    root = tmp_path_factory.mktemp("crashed")
    data = make_folder(root / "data", ["cat_a", "cat_b", "cat_c"], 8)
    cfg = tiny_train_config(data, root / "run", **{"data.cache_dir": str(root / "cache")})
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[CrashAtEpoch(1)])
    return RunDir(root / "run")


def test_resume_refuses_a_changed_recipe_naming_both_values(crashed_run, tmp_path, capsys):
    recipe = crashed_run.config.read_bytes()
    last = str(crashed_run.last_checkpoint)
    assert main(["train", "--resume", last, "--set", "train.label_smoothing=0.3"]) == 2
    err = capsys.readouterr().err
    assert "train.label_smoothing: 0.0 in the run, 0.3 now" in err
    # another recipe file: each field that differs is named
    other = tmp_path / "other.yaml"
    other.write_text(crashed_run.config.read_text().replace("mobilenet_v2", "resnet18"))
    other.write_text(other.read_text().replace("seed: 42", "seed: 7", 1))
    assert main(["train", "--resume", last, "--config", str(other)]) == 2
    err = capsys.readouterr().err
    assert "model.name: 'mobilenet_v2' in the run, 'resnet18' now" in err
    assert "seed: 42 in the run, 7 now" in err
    # the Python API refuses it too
    cfg = load_config(crashed_run.config, sets=["augment.p=0.9"])
    with pytest.raises(ConfigError, match="augment.p: 0.25 in the run, 0.9 now"):
        train(cfg, resume=crashed_run.path)
    # its data folder elsewhere (allowed) but missing: named, never downloaded
    assert main(["train", "--resume", last, "--data", str(tmp_path / "moved-data")]) == 2
    captured = capsys.readouterr()
    assert "needs the images its split.csv lists" in captured.err
    assert "downloading" not in captured.out
    assert crashed_run.config.read_bytes() == recipe
    assert len(read_metrics(crashed_run.path)) == 1


def test_resume_of_a_run_folder_moved_elsewhere_with_more_epochs(crashed_run, tmp_path):
    """What a person types: `scenes train --resume RUN`, here for a run copied to another
    folder and given one more epoch (allowed: it does not change what the epochs compute).
    The console stays free of Lightning's "dirpath has changed" warning."""
    run = shutil.copytree(crashed_run.path, tmp_path / "copied")
    argv = ["train", "--resume", str(run), "--epochs", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "scenes", *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert "dirpath" not in console and "downloading" not in console.lower()
    assert f"weights: from the checkpoint {run / 'checkpoints' / 'last.ckpt'}" in console
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2", "3"]
    assert load_config(run / "config.yaml").train.epochs == 3


def test_resume_names_what_is_missing(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'checkpoints' / 'last.ckpt'} not found" in captured.err
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    captured = capsys.readouterr()
    assert "no such checkpoint or run folder" in captured.err
    assert "download" not in captured.out


class BlowUpLastEpoch(L.Callback):
    """Ruins the weights in the final epoch, so the best epoch is an earlier one."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == trainer.max_epochs - 1:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 5.0


def model_state(ckpt_path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    return {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }


def test_bundle_holds_the_best_epoch_not_the_last(data, tmp_path):
    cfg = tiny_train_config(
        data, tmp_path / "run", **{"model.name": "resnet18", "train.mode": "head"}
    )
    result = train(cfg, extra_callbacks=[BlowUpLastEpoch()])
    best, last = (result.run_dir / "checkpoints" / f"{n}.ckpt" for n in ("best", "last"))
    assert result.best_epoch == 1 and len(read_metrics(result.run_dir)) == 2
    bundle, meta = load_bundle(result.run_dir)
    reference, _ = load_bundle(result.run_dir)
    x = torch.randn(5, 3, meta.image_size, meta.image_size)
    with torch.no_grad():
        reference.load_state_dict(model_state(best))
        assert torch.allclose(bundle(x), reference(x), atol=1e-6)
        reference.load_state_dict(model_state(last))
        assert not torch.allclose(bundle(x), reference(x), atol=1e-3)
    # and the bundle alone (no config, no checkpoint) carries the class order and preprocessing
    model = Predictor.load(result.run_dir / "model", device="cpu")
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


def lrs_of(run_dir) -> list[float]:
    return [float(r["lr"]) for r in read_metrics(run_dir)]


def test_step_schedule_drops_the_lr_by_gamma_every_step_size_epochs(data, tmp_path):
    cfg = {"train.scheduler": "step", "train.step_size": 1, "train.gamma": 0.1, "train.epochs": 3}
    result = train(tiny_train_config(data, tmp_path / "step", **cfg))
    assert lrs_of(result.run_dir) == pytest.approx([3e-3, 3e-4, 3e-5], rel=1e-6)


def test_no_schedule_keeps_the_lr(data, tmp_path):
    result = train(tiny_train_config(data, tmp_path / "none", **{"train.scheduler": "none"}))
    assert lrs_of(result.run_dir) == pytest.approx([3e-3, 3e-3], rel=1e-6)


def test_plateau_schedule_drops_the_lr_after_an_epoch_without_improvement(data, tmp_path):
    cfg = {
        "train.scheduler": "plateau",
        "train.plateau_patience": 0,
        "train.gamma": 0.5,
        "train.epochs": 5,
        "train.lr": 0.05,  # large: the validation loss does not fall every epoch
    }
    result = train(tiny_train_config(data, tmp_path / "plateau", **cfg))
    rows = read_metrics(result.run_dir)
    # ReduceLROnPlateau's rule (relative threshold 1e-4), replayed on the logged val_loss.
    expected, lr, best = [], 0.05, float("inf")
    for row in rows:
        expected.append(lr)
        value = float(row["val_loss"])
        if value < best * (1 - 1e-4):
            best = value
        else:
            lr *= 0.5
    assert lrs_of(result.run_dir) == pytest.approx(expected, rel=1e-6)
    assert len(set(expected)) > 1, "no epoch without improvement: the test checked nothing"


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
    step = lr_multiplier(
        load_config(sets=["train.mode=full", "train.scheduler=step", "train.step_size=2"]).train
    )
    assert step(1.9) == 1.0 and step(2.0) == pytest.approx(0.1)


@pytest.mark.parametrize("precision", ["auto", "32-true", "16-mixed", "bf16-mixed", "bf16-true"])
def test_every_allowed_precision_trains_or_is_refused_up_front(data, tmp_path, precision):
    from scenes.config_sections import TrainConfig
    from scenes.training.hardware import resolve_hardware

    allowed = TrainConfig.model_fields["precision"].annotation.__args__
    assert precision in allowed  # the parametrization covers the allowed values ...
    assert len(allowed) == 5  # ... all of them
    cfg = tiny_train_config(
        data, tmp_path / precision, **{"train.precision": precision, "train.epochs": 1}
    )
    if precision == "16-mixed" and not torch.cuda.is_available():
        # Refused before any data is read: the data folder need not even exist.
        missing = tiny_train_config(
            tmp_path / "nowhere", tmp_path / "x", **{"train.precision": precision}
        )
        with pytest.raises(ConfigError, match="16-mixed needs a CUDA GPU"):
            train(missing)
        return
    result = train(cfg)
    rows = read_metrics(result.run_dir)
    assert len(rows) == 1 and float(rows[0]["train_loss"]) > 0
    ran = resolve_hardware(cfg.train).precision
    assert ran != "auto" and (precision == "auto" or ran == precision)
    # the bundle loads into an fp32 network whatever precision trained it
    module, _ = load_bundle(result.run_dir)
    assert all(p.dtype == torch.float32 for p in module.parameters())


def test_auto_precision_follows_the_hardware(monkeypatch):
    from scenes.training.hardware import resolve_precision

    assert resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto", "cuda") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_precision("auto", "cuda") == "16-mixed"  # e.g. a V100 or T4


def test_norm_weights_and_biases_get_their_own_weight_decay():
    from scenes.models import build_model
    from scenes.training.module import weight_decay_groups

    params = list(build_model("resnet18", 3, pretrained=False).module.parameters())
    decayed, not_decayed = weight_decay_groups(params, 0.05, 0.0)
    assert decayed["weight_decay"] == 0.05 and not_decayed["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"])
    assert all(p.ndim == 1 for p in not_decayed["params"])
    assert len(decayed["params"]) + len(not_decayed["params"]) == len(params)
    assert weight_decay_groups(params, 0.05, None)[1]["weight_decay"] == 0.05


def test_validation_loss_is_plain_cross_entropy(data, tmp_path):
    """Label smoothing shapes training only: val_loss is the unsmoothed loss of the model."""
    from scenes.evaluation.loop import evaluate

    cfg = tiny_train_config(
        data,
        tmp_path / "ls",
        **{"model.name": "resnet18", "train.label_smoothing": 0.3, "train.epochs": 1},
    )
    result = train(cfg)
    logits = evaluate(result.run_dir, split="val", out=False, device="cpu").logits
    labels = torch.tensor(
        [["cat_a", "cat_b", "cat_c"].index(p.parent.name) for p in val_paths(result.run_dir)]
    )
    plain = torch.nn.functional.cross_entropy(torch.from_numpy(logits), labels).item()
    assert float(read_metrics(result.run_dir)[0]["val_loss"]) == pytest.approx(plain, rel=1e-4)


def val_paths(run_dir):
    with (run_dir / "split.csv").open() as fh:
        return [Path(r["path"]) for r in csv.DictReader(fh) if r["split"] == "val"]


def test_console_output_reads_cleanly(tmp_path):
    """What a user sees: the data, weights and device found (a line each), the epoch table,
    skipped files by path, a summary with the next commands; nothing twice, no library
    chatter, no warning prefixed with a source file."""
    data = make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 8)
    (data / "cat_a" / "broken.jpg").write_text("not an image")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--no-pretrained"]
    argv += ["--epochs", "2", "--image-size", "32", "--batch-size", "8"]
    argv += ["--set", "train.progress_bar=false", "--set", "data.val_fraction=0.25"]
    done = subprocess.run(
        [sys.executable, "-m", "scenes", *argv], capture_output=True, text=True, check=True
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1]
    text = "\n".join(lines)
    for expected in (
        f"data: {data.resolve()} (bare layout): 25 images, 3 classes",
        "weights: none: random initialisation (--no-pretrained)",
        "device: cpu, precision 32-true",
        "global batch 8 = 8 per device x 1 process(es) x 1 accumulated",
        f"warning: skipped 1 unreadable image file:\n  {data / 'cat_a' / 'broken.jpg'}: ",
        "best epoch",
        f"scenes evaluate --run {tmp_path / 'run'} --split val",
        f"scenes app --run {tmp_path / 'run'}",
    ):
        assert expected in text, expected
    assert sum("train loss" in line for line in lines) == 1
    for noise in ("INFO", "Tip", "litlogger", "UserWarning", ".py:", "BytesIO", "LeafSpec"):
        assert noise not in text, noise


def test_ema_weights_are_validated_and_bundled_from_the_full_phase_on(data, tmp_path):
    cfg = tiny_train_config(
        data,
        tmp_path / "ema",
        **{
            "model.name": "resnet18",
            "train.mode": "fine_tune",
            "train.head_epochs": 1,
            "train.epochs": 3,
            "train.ema_decay": 0.9,
            "train.monitor": "val_acc",
        },
    )
    seen = {}

    class Spy(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            seen[trainer.current_epoch] = "current_model_state" in checkpoint

    result = train(cfg, extra_callbacks=[Spy()])
    assert seen == {0: False, 1: True, 2: True}  # averaging starts with the full phase
    checkpoints = result.run_dir / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    averaged, raw = last["state_dict"], last["current_model_state"]
    key = "model.fc.weight"
    assert not torch.allclose(averaged[key], raw[key])  # the average is not the last step
    # The bundle holds the weights validated at its epoch: averaged ones from the full phase on.
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    assert ("current_model_state" in best) == (result.best_epoch >= 2)
    bundle, _ = load_bundle(result.run_dir)
    assert torch.allclose(bundle.state_dict()["fc.weight"], best["state_dict"][key])


def test_the_docs_name_every_change_a_resume_allows():
    from scenes.training.resume import RESUMABLE_CHANGES

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    allowed = text[text.index("What a resume refuses") : text.index("**other files.**")]
    assert all(f"`{field}`" in allowed for field in RESUMABLE_CHANGES)


def test_a_tracker_that_cannot_start_is_a_setting_to_fix_before_any_decoding(
    data, tmp_path, monkeypatch, capsys
):
    """MLflow 3 refuses its old file store: that is the user's setting, not a bug in scenes."""
    import os

    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--no-pretrained"]
    assert main([*argv, "--set", "train.loggers=csv,mlflow"]) == 2
    captured = capsys.readouterr()
    assert "from $MLFLOW_TRACKING_URI" in captured.err and "sqlite:///mlflow.db" in captured.err
    assert "Traceback" not in captured.err and "bug" not in captured.err
    assert not list(Path(os.environ["SCENES_CACHE"]).iterdir())  # no image was decoded
    assert not (tmp_path / "run").exists()
    # the description of train.loggers names the default the code uses
    from scenes.config_sections import TrainConfig
    from scenes.training.loggers import mlflow_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    default = mlflow_uri().replace(str(Path.cwd()) + "/", "")
    assert default in TrainConfig.model_fields["loggers"].description
