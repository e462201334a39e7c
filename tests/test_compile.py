"""torch.compile where it pays: training compiles on CUDA by default (`train.compile: auto`)
and on the CPU when asked (the same code path); serving compiles on request and answers with
the eager network's probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenes.errors import UsageError
from scenes.rundir import RunDir, read_checkpoint
from scenes.serve.predictor import Predictor
from scenes.training import train
from scenes.training.run import compiles

from conftest import make_folder, make_image, tiny_train_config


@pytest.mark.parametrize(
    "choice, accelerator, compiled",
    [("auto", "cpu", False), ("auto", "cuda", True), (True, "cpu", True), (False, "cuda", False)],
)
def test_auto_compiles_on_cuda_only(choice, accelerator, compiled):
    assert compiles(choice, accelerator) is compiled


def test_training_compiles_when_asked_and_keeps_the_state_dict_keys(tmp_path, monkeypatch):
    calls = []
    real = torch.nn.Module.compile

    def counted(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", counted)
    data = make_folder(tmp_path / "data", ["a", "b", "c"], 8)
    # 18 training and 6 validation images in batches of 6: every batch has one shape, so the
    # network compiles once per mode instead of again for a dynamic batch size (about 2 minutes
    # of these 2 cores), and the path under test is the same.
    cfg = tiny_train_config(
        data,
        tmp_path / "run",
        **{"model.name": "timm:test_resnet", "train.compile": True, "data.batch_size": 6},
    )
    result = train(cfg)
    assert calls == ["ResNet"]
    assert result.epochs_run == 2
    keys = read_checkpoint(RunDir(result.run_dir).best_checkpoint)["state_dict"]
    assert not any("_orig_mod" in k for k in keys)
    photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
    assert len(Predictor.load(result.run_dir, device="cpu").predict(photo)) == 3


@pytest.mark.parametrize("accept_all", [False, True], ids=["with acceptance", "plain"])
def test_a_compiled_predictor_gives_the_eager_answers(trained_run, tmp_path, accept_all):
    photos = [
        make_image(tmp_path / f"{i}.jpg", (40 * i, 200 - 30 * i, 90), seed=i) for i in range(5)
    ]
    eager = Predictor.load(trained_run, device="cpu", accept_all=accept_all)
    compiled = Predictor.load(trained_run, device="cpu", accept_all=accept_all, compile=True)
    assert compiled.torch_runner._compiled is not None
    for one in photos:  # one photo at a time, as the app asks
        a, b = eager.predict(one), compiled.predict(one)
        assert [label for label, _ in a] == [label for label, _ in b]
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], atol=1e-5)
        assert a.accepted == b.accepted
    images, _, _ = eager.load_images(photos)  # a batch of five
    np.testing.assert_allclose(
        eager.probabilities(images), compiled.probabilities(images), atol=1e-5
    )


def test_compile_applies_to_the_torch_backend_only(trained_run):
    with pytest.raises(UsageError, match="applies to the torch backend"):
        Predictor.load(trained_run, backend="onnx", compile=True)
