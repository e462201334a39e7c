import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scenes.cli import main
from scenes.export import export_onnx
from scenes.inference import BundleModel

from conftest import CLASSES as INTEL_CLASSES
from conftest import INTEL_TRAIN, needs_intel


@needs_intel
def test_onnx_matches_pytorch_on_real_images_with_any_batch_size(trained_run, tmp_path):
    out = export_onnx(trained_run, tmp_path / "m.onnx")
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    model = BundleModel.load(trained_run)
    files = [sorted((INTEL_TRAIN / c).iterdir())[0] for c in INTEL_CLASSES]
    images, ok, errors = model.load_images(files)
    assert not errors
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (images, images[:1]):  # dynamic batch axis: 6 and 1
        x = model.to_input(batch).contiguous().numpy()
        (onnx_logits,) = session.run(["logits"], {"input": x})
        np.testing.assert_allclose(onnx_logits, model.logits(batch).numpy(), atol=1e-4)


def test_cli_export_default_path(trained_run, capsys):
    assert main(["export", "--run", str(trained_run), "--format", "onnx"]) == 0
    assert (trained_run / "model" / "model.onnx").is_file()
    assert "model.onnx" in capsys.readouterr().out


def test_export_of_a_missing_bundle_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path), "--format", "onnx"]) == 2
    assert "no model bundle" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        export_onnx(tmp_path)
