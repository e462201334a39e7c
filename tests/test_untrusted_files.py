"""Files from elsewhere are data, never code: a shared run folder's checkpoints, a bundle's
model.json, and the CSV files people open in spreadsheets."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from scenes.cli import main
from scenes.csvfile import neutralise, restore
from scenes.errors import BundleError, UnsafeFileError
from scenes.models import build_model, load_bundle, save_bundle
from scenes.models.bundle import read_meta
from scenes.models.meta import BundleMeta
from scenes.rundir import read_checkpoint

from conftest import make_folder, make_image


class Planted:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> None:
    torch.save({"epoch": 0, "state_dict": {}, "payload": Planted(marker)}, path)


@pytest.fixture
def shared_run(trained_run, tmp_path) -> Path:
    """A run folder someone sent: its checkpoints replaced by pickles that run code."""
    run = tmp_path / "shared-run"
    shutil.copytree(trained_run, run)
    for name in ("best.ckpt", "last.ckpt"):
        plant(run / "checkpoints" / name, tmp_path / f"pwned-{name}")
    return run


def test_the_planted_pickle_would_run_code_if_loaded_as_a_pickle(tmp_path):
    """The test below is meaningful: a plain pickle load of such a file does run it."""
    plant(tmp_path / "x.ckpt", tmp_path / "ran")
    torch.load(tmp_path / "x.ckpt", weights_only=False)
    assert (tmp_path / "ran").exists()
    with pytest.raises(UnsafeFileError, match="could run code"):
        read_checkpoint(tmp_path / "x.ckpt")


def test_report_resume_and_evaluate_never_run_a_shared_checkpoint(shared_run, tmp_path, capsys):
    assert main(["report", "--run", str(shared_run)]) == 2
    assert "was not loaded" in capsys.readouterr().err
    last = shared_run / "checkpoints" / "last.ckpt"
    assert main(["train", "--resume", str(last), "--set", "train.progress_bar=false"]) == 2
    assert "was not loaded" in capsys.readouterr().err
    # evaluate needs only model/ (safetensors + JSON): it reads no checkpoint at all
    out = tmp_path / "eval"
    assert main(["evaluate", "--run", str(shared_run), "--split", "val", "--out", str(out)]) == 0
    assert not list(tmp_path.glob("pwned-*"))


def test_real_checkpoints_load_as_data_only(trained_run):
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = read_checkpoint(trained_run / "checkpoints" / name)
        assert "state_dict" in checkpoint and "scenes" in checkpoint


# -- model.json ------------------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path) -> Path:
    built = build_model("resnet18", 3, pretrained=False)
    meta = BundleMeta.of(built, ["a", "b", "c"], 32)
    return save_bundle(built.module, meta, tmp_path / "model")


def rewrite(bundle: Path, **changes) -> None:
    raw = json.loads((bundle / "model.json").read_text())
    raw.update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del raw[key]
    (bundle / "model.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"image_size": 99_999}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"std": [0.2, 0.0, 0.2]}, "std"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"class_names": ["a", "a", "b"]}, "class_names"),
        ({"interpolation": "magic"}, "interpolation"),
        ({"backend": "pickle"}, "backend"),
        ({"class_names": ...}, "class_names"),
        ({"extra_code": "import os"}, "extra_code"),
    ],
)
def test_a_bundle_with_impossible_values_is_refused_naming_the_field(bundle, changes, field):
    rewrite(bundle, **changes)
    with pytest.raises(BundleError, match=rf"model.json holds values(.|\n)*{field}"):
        read_meta(bundle)


def test_an_hf_bundle_without_its_config_is_refused_instead_of_asking_the_hub(bundle):
    rewrite(bundle, backend="hf", architecture="google/vit-base-patch16-224", backend_config=None)
    with pytest.raises(BundleError, match="backend_config"):
        load_bundle(bundle)


def test_damaged_or_newer_bundles_say_so(bundle, tmp_path, capsys):
    rewrite(bundle, format=99)
    with pytest.raises(BundleError, match="format 99 is newer"):
        read_meta(bundle)
    (bundle / "model.json").write_text("{not json")
    photo = make_image(tmp_path / "photo.jpg", (200, 40, 40))
    assert main(["predict", "--run", str(bundle), str(photo)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_older_bundles_load_and_single_models_stay_format_2(bundle, tmp_path):
    """A format-1 model.json (no resize, task, calibration, acceptance or training fields)
    loads with their defaults; a single model is still written as format 2, so a scenes that
    knows format 2 reads it (format 3 is for ensembles only)."""
    assert json.loads((bundle / "model.json").read_text())["format"] == 2
    newer = ["resize", "task", "temperature", "thresholds", "acceptance", "training", "members"]
    rewrite(bundle, format=1, **{key: ... for key in newer})
    raw = json.loads((bundle / "model.json").read_text())
    assert raw["format"] == 1 and not set(newer) & set(raw)
    meta = read_meta(bundle)
    assert (meta.resize, meta.task, meta.temperature, meta.acceptance) == (
        "squash",
        "multiclass",
        1.0,
        None,
    )
    photo = make_image(tmp_path / "photo.jpg", (200, 40, 40))
    from scenes.serve.predictor import Predictor

    assert len(Predictor.load(bundle, device="cpu").predict(photo)) == 3


def test_weights_that_do_not_fit_the_description_are_refused(bundle):
    rewrite(bundle, class_names=["a", "b", "c", "d"])
    with pytest.raises(BundleError, match="does not hold the weights"):
        load_bundle(bundle)


def test_bundle_files_follow_the_umask(bundle):
    for name in ("model.safetensors", "model.json"):
        mode = stat.S_IMODE((bundle / name).stat().st_mode)
        expected = 0o666 & ~_umask()
        assert mode == expected, (name, oct(mode), oct(expected))
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # no temporary left


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# -- CSV cells ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["=HYPERLINK(1)", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=quoted", "'", "''x"]
)
def test_text_cells_cannot_become_formulas_and_read_back_as_they_were(text):
    cell = neutralise(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) and cell.startswith("'")
    assert restore(cell) == text
    assert neutralise("buildings") == "buildings" and neutralise(-0.5) == -0.5


@pytest.fixture
def formula_run(tmp_path) -> Path:
    """A bundle whose class names are formulas, and a labelled folder of those classes."""
    names = ["=cmd", "+plus", "@at"]
    built = build_model("resnet18", 3, pretrained=False)
    meta = BundleMeta.of(built, names, 32)
    save_bundle(built.module.eval(), meta, tmp_path / "run" / "model")
    make_folder(tmp_path / "test", names, 2)
    return tmp_path / "run"


def cells(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def assert_no_formula(path: Path) -> None:
    risky = [c for c in cells(path) if c.startswith(("=", "+", "@"))]
    assert not risky, (path.name, risky)


def test_predict_and_evaluate_csvs_hold_no_formulas(formula_run, tmp_path):
    image = make_image(tmp_path / "-1+2.jpg", (220, 40, 40))
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(formula_run), str(image), "--out", str(preds)]) == 0
    assert_no_formula(preds)
    assert any(c.startswith("'") for c in cells(preds))
    out = tmp_path / "eval"
    code = main(
        ["evaluate", "--run", str(formula_run), "--data", str(tmp_path / "test"), "--out", str(out)]
    )
    assert code == 0
    for name in ("predictions.csv", "per_class.csv", "confusion_matrix.csv"):
        assert_no_formula(out / name)


def test_label_issue_lists_hold_no_formulas_and_still_exclude_their_paths(tmp_path):
    import numpy as np

    from scenes.data.exclude import read_path_list
    from scenes.label_issues.outputs import write_issues_csv, write_quality_csv
    from scenes.label_issues.ranking import LabelIssues

    issues = LabelIssues(
        paths=[tmp_path / "=x" / "0.jpg", tmp_path / "=x" / "1.jpg"],
        labels=np.array([0, 1]),
        class_names=["=a", "-b"],
        pred_probs=np.array([[0.1, 0.9], [0.8, 0.2]]),
        scores=np.array([0.1, 0.2]),
        ranked=np.array([0, 1]),
        method="self_confidence",
        folds=2,
        backbone="test",
        skipped={},
    )
    listed = write_issues_csv(issues, issues.ranked, tmp_path / "label_issues.csv")
    quality = write_quality_csv(issues, tmp_path / "label_quality.csv")
    assert_no_formula(listed)
    assert_no_formula(quality)
    assert [Path(p) for p in read_path_list(listed)] == issues.paths


# -- TorchScript: a program, loaded only when scenes wrote it here from these weights ----------
def torchscript_answer(program) -> torch.Tensor:
    with torch.no_grad():
        return program(torch.ones(1, 3, 32, 32))[0]


def bundle_of_other_weights(tmp_path) -> Path:
    """A bundle like ``bundle`` (same classes, size and architecture), other weights."""
    other = build_model("resnet18", 3, pretrained=False)
    return save_bundle(other.module, BundleMeta.of(other, ["a", "b", "c"], 32), tmp_path / "o")


def test_torchscript_loads_the_very_bytes_it_checked(bundle, tmp_path, monkeypatch):
    """A file swapped in after the check is never what runs: the checked bytes are loaded."""
    from scenes.serve.formats import export, torchscript, trust, weights_digest

    path = export(bundle, "torchscript")
    expected = torchscript_answer(torchscript.load(path, "cpu", weights_digest(bundle)))
    planted = export(bundle_of_other_weights(tmp_path), "torchscript").read_bytes()
    checked = trust.known

    def known_then_swapped(*args):
        answer = checked(*args)
        path.write_bytes(planted)  # the swap, right after the check
        return answer

    monkeypatch.setattr(trust, "known", known_then_swapped)
    program = torchscript.load(path, "cpu", weights_digest(bundle))
    assert path.read_bytes() == planted
    assert torch.equal(torchscript_answer(program), expected)


def test_torchscript_from_other_weights_is_not_trusted(bundle):
    from scenes.errors import UsageError
    from scenes.serve.formats import export, torchscript, weights_digest

    path = export(bundle, "torchscript")
    assert torchscript.trusted(path, weights_digest(bundle))
    assert not torchscript.trusted(path, "0" * 64)
    with pytest.raises(UsageError, match="current weights"):
        torchscript.load(path, "cpu", "0" * 64)


def test_a_symbolic_link_in_a_bundle_is_never_followed(bundle, tmp_path):
    """A link to a file scenes did write (elsewhere) gets nothing from it: named, it is
    refused; by default, the link is replaced by a new export and the target is untouched."""
    from scenes.errors import UsageError
    from scenes.serve.formats import FORMATS, export
    from scenes.serve.predictor import Predictor

    elsewhere = export(bundle, "torchscript", tmp_path / "elsewhere" / "model.torchscript.pt")
    before = elsewhere.read_bytes()
    link = bundle / FORMATS["torchscript"].file
    link.symlink_to(elsewhere)
    with pytest.raises(UsageError, match="symbolic link"):
        Predictor.load(bundle, backend="torchscript", device="cpu", export_path=link)
    Predictor.load(bundle, backend="torchscript", device="cpu")
    assert not link.is_symlink() and link.is_file()
    assert elsewhere.read_bytes() == before


def test_a_trust_record_others_can_write_or_own_is_refused(bundle, tmp_path, monkeypatch, capsys):
    from scenes.serve.formats import export, trust
    from scenes.serve.predictor import Predictor

    export(bundle, "torchscript")
    record = trust.record_path()
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    Predictor.load(bundle, backend="torchscript", device="cpu")  # ours, private: loads
    record.chmod(0o666)
    with pytest.raises(UnsafeFileError, match=rf"{record}(.|\n)*mode 0o666(.|\n)*chmod 600"):
        Predictor.load(bundle, backend="torchscript", device="cpu")
    photo = make_image(tmp_path / "photo.jpg", (200, 40, 40))
    assert main(["predict", "--run", str(bundle), "--backend", "torchscript", str(photo)]) == 2
    assert str(record) in capsys.readouterr().err
    record.chmod(0o600)
    monkeypatch.setattr(os, "getuid", lambda: record.stat().st_uid + 1)
    with pytest.raises(UnsafeFileError, match="owned by another user"):
        Predictor.load(bundle, backend="torchscript", device="cpu")


# -- ONNX and OpenVINO: a stamp is the file's own word ----------------------------------------
def test_a_stamped_onnx_file_from_other_weights_is_not_served(bundle, tmp_path, monkeypatch):
    """A model.onnx exported from other weights, its stamp copied from this bundle's: named,
    it is refused; by default it is exported again, and the new file answers like PyTorch."""
    import numpy as np
    import onnx

    from scenes.serve.formats import (
        DIGEST_KEY,
        StaleExportError,
        export,
        is_current,
        recorded,
        weights_digest,
    )
    from scenes.serve.predictor import Predictor

    elsewhere = bundle_of_other_weights(tmp_path)
    planted = bundle / "model.onnx"
    graph = onnx.load(str(export(elsewhere, "onnx")))
    stamp = {**recorded(elsewhere / "model.onnx", "onnx"), DIGEST_KEY: weights_digest(bundle)}
    onnx.helper.set_model_props(graph, stamp)
    onnx.save(graph, str(planted))
    assert is_current(planted, bundle, "onnx")  # the stamp alone would be believed

    with pytest.raises(StaleExportError, match=rf"{planted}(.|\n)*probe images"):
        Predictor.load(bundle, backend="onnx", device="cpu", export_path=planted)
    served = Predictor.load(bundle, backend="onnx", device="cpu")  # exported again
    pixels = np.stack([served.load_image(make_image(tmp_path / "p.jpg", (200, 40, 40)))])
    expected = Predictor.load(bundle, device="cpu").answers(pixels).probs
    np.testing.assert_allclose(served.answers(pixels).probs, expected, atol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_a_genuine_export_from_elsewhere_is_checked_once_then_served(
    bundle, tmp_path, monkeypatch, fmt
):
    """An export made on another machine (another cache here) answers like PyTorch: it is
    served as it is, and recorded, so it is not checked again."""
    from scenes.serve import export_probe as probe
    from scenes.serve.formats import FORMATS, export, export_digest, trust, weights_digest
    from scenes.serve.predictor import Predictor

    if FORMATS[fmt].missing():
        pytest.skip(FORMATS[fmt].missing())
    path = export(bundle, fmt)
    before = path.read_bytes()
    monkeypatch.setenv("SCENES_CACHE", str(tmp_path / "this-machine"))
    key = (fmt, export_digest(path, fmt), weights_digest(bundle))
    assert not trust.known(*key)
    Predictor.load(bundle, backend=fmt, device="cpu", export_path=path)
    assert path.read_bytes() == before and trust.known(*key)
    monkeypatch.setattr(probe, "disagreement", lambda *a: pytest.fail("checked twice"))
    Predictor.load(bundle, backend=fmt, device="cpu")
    assert path.read_bytes() == before
