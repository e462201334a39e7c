import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scenes.cli import main
from scenes.serve.formats import export
from scenes.serve.predictor import Predictor

from conftest import CLASSES as INTEL_CLASSES
from conftest import INTEL_TRAIN, needs_intel


@needs_intel
def test_onnx_matches_pytorch_on_real_images_with_any_batch_size(trained_run, tmp_path):
    out = export(trained_run, "onnx", tmp_path / "m.onnx")
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    model = Predictor.load(trained_run, device="cpu")
    files = [sorted((INTEL_TRAIN / c).iterdir())[0] for c in INTEL_CLASSES]
    images, ok, errors = model.load_images(files)
    assert not errors
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (images, images[:1]):  # dynamic batch axis: 6 and 1
        x = model.to_input(batch).contiguous().numpy()
        (onnx_logits,) = session.run(["logits"], {"input": x})
        np.testing.assert_allclose(onnx_logits, model.logits(batch), atol=1e-4)


def test_cli_export_default_path(fresh_run, capsys):
    assert main(["export", "--run", str(fresh_run), "--format", "onnx"]) == 0
    assert (fresh_run / "model" / "model.onnx").is_file()
    assert "model.onnx" in capsys.readouterr().out


def test_export_of_a_missing_bundle_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path), "--format", "onnx"]) == 2
    assert "no model bundle" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        export(tmp_path, "onnx")


def test_onnx_follows_the_bundle_after_a_resumed_run_rewrites_it(tmp_path):
    """Export, resume one more epoch (the bundle is rewritten), then the ONNX backend must
    answer like the PyTorch one: the stale graph is re-exported, never served."""
    from scenes.serve.formats import StaleExportError, is_current
    from scenes.serve.predictor import Predictor
    from scenes.training import train

    from conftest import make_folder, tiny_train_config

    data = make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)
    # Head only: validation loss falls steadily, so the resumed epoch is the new best and the
    # bundle is rewritten with other weights.
    overrides = {"model.name": "resnet18", "train.mode": "head", "train.scheduler": "none"}
    run = train(tiny_train_config(data, tmp_path / "run", **overrides, **{"train.epochs": 1}))
    run = run.run_dir
    onnx_file = export(run, "onnx")
    assert is_current(onnx_file, run)
    cfg = tiny_train_config(data, tmp_path / "run", **{**overrides, "train.epochs": 2})
    train(cfg, resume=run / "checkpoints" / "last.ckpt")
    assert not is_current(onnx_file, run)  # the bundle changed under the export
    with pytest.raises(StaleExportError, match="scenes export"):
        Predictor.load(run, backend="onnx", device="cpu", export_path=onnx_file)

    images = sorted(data.rglob("*.jpg"))[::4]
    torch_rows = Predictor.load(run, device="cpu").predict_many(images, top_k=3)
    onnx_rows = Predictor.load(run, backend="onnx", device="cpu").predict_many(images, top_k=3)
    assert is_current(onnx_file, run)  # re-exported on load
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert [label for label, _ in a.top] == [label for label, _ in b.top]
        for (_, p), (_, q) in zip(a.top, b.top):
            assert p == pytest.approx(q, abs=1e-5)
