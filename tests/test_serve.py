"""``scenes serve`` as a client meets it: one live server (LitServe, a real worker process) on
the shared tiny run, with an API key; its answers against ``Predictor``'s on the awkward-file
corpus, every bad request refused with 4xx JSON while it keeps answering, health, info and
metrics, and SIGTERM draining a request in flight."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image
from test_one_answer import awkward_corpus

from scenes.serve.http_gate import Gate, GateOptions
from scenes.serve.predictor import Predictor

from conftest import INTEL_TRAIN, needs_intel
from test_app import free_port

KEY = "s3cret-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Batching on (the batched path is the one with more to get wrong), a 1 MB upload limit.
LIMITS = ["--max-batch-size", "4", "--batch-timeout", "0.01", "--max-upload-mb", "1"]


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "SCENES_TEST_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    log = tmp_path_factory.mktemp("serve") / "server.log"
    args = ["--run", str(trained_run), "--port", str(port), "--api-key-env", "SCENES_TEST_KEY"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scenes", "serve", *args, *LIMITS],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"{url}/health", headers=AUTH, timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"the server did not become healthy:\n{log.read_text()}")
    yield url, proc, log
    if proc.poll() is None:  # SIGTERM: the server stops its worker processes too
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def png_bytes(color=(200, 30, 30), size=(40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def post(url, **kwargs) -> requests.Response:
    return requests.post(f"{url}/predict", headers=AUTH, timeout=30, **kwargs)


@needs_intel
def test_answers_equal_predictors_on_the_awkward_corpus(server, trained_run, tmp_path):
    url = server[0]
    photo = sorted((INTEL_TRAIN / "sea").iterdir())[0]
    files = awkward_corpus(tmp_path / "awkward", photo)
    predictor = Predictor.load(trained_run)
    accepted = set()
    for path in files:
        answer = post(url, files={"file": (path.name, path.read_bytes())}, params={"top_k": 3})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        expected = predictor.predict(path, top_k=3)
        assert [p["label"] for p in found["predictions"]] == [label for label, _ in expected]
        got = [p["probability"] for p in found["predictions"]]
        np.testing.assert_allclose(got, [p for _, p in expected], atol=1e-5, err_msg=path.name)
        assert found["accepted"] == expected.accepted and expected.accepted is not None
        assert found["score"] == pytest.approx(expected.score, abs=1e-5)
        accepted.add(found["accepted"])
    # Several photos in one request, and base64 JSON: the same answers.
    several = [("files", (p.name, p.read_bytes())) for p in files[:3]]
    results = post(url, files=several, params={"top_k": 1}).json()["results"]
    assert [r["name"] for r in results] == [p.name for p in files[:3]]
    for result, path in zip(results, files[:3]):
        want = predictor.predict(path, top_k=1)[0]
        assert result["predictions"][0]["label"] == want[0]
        assert result["predictions"][0]["probability"] == pytest.approx(want[1], abs=1e-5)
    encoded = base64.b64encode(files[0].read_bytes()).decode()
    by_json = post(url, json={"image": encoded}).json()
    top = predictor.predict(files[0], top_k=3)
    assert by_json["predictions"][0]["probability"] == pytest.approx(top[0][1], abs=1e-5)


BAD = [
    ({"files": {"file": ("notes.txt", b"not a photo at all")}}, 400, "not an image"),
    ({"files": {"file": ("empty.png", b"")}}, 400, "empty"),
    ({"data": b""}, 400, "empty"),
    ({"files": {"photo": ("a.png", png_bytes())}}, 400, "unknown field photo"),
    ({"files": {"file": ("a.png", png_bytes())}, "params": {"top_k": "0"}}, 400, "top_k"),
    ({"files": {"file": ("a.png", png_bytes())}, "params": {"top_k": "x"}}, 400, "top_k"),
    ({"json": {"picture": "abc"}}, 400, '{"image"'),
    ({"json": {"image": "%%%"}}, 400, "base64"),
    ({"files": {"file": ("big.bin", b"\0" * (2 * 2**20))}}, 413, "max-upload-mb"),
    ({"data": b"GIF89a", "headers": {"Content-Type": "text/plain"}}, 415, "content type"),
]


def bomb_png() -> bytes:
    """A small file whose header claims more pixels than Pillow's limit."""
    buffer = io.BytesIO()
    Image.new("1", (Image.MAX_IMAGE_PIXELS // 4000 + 1, 4000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("request_kwargs", "status", "said"), BAD)
def test_bad_requests_get_4xx_json_and_the_server_stays_up(server, request_kwargs, status, said):
    url, proc, log = server
    kwargs = dict(request_kwargs)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    answer = requests.post(f"{url}/predict", headers=headers, timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    assert said in answer.json()["error"]
    assert "Traceback" not in answer.text and "Traceback" not in log.read_text()
    assert post(url, files={"file": ("ok.png", png_bytes())}).status_code == 200


def test_too_many_pixels_is_refused(server):
    answer = post(server[0], files={"file": ("bomb.png", bomb_png())})
    assert answer.status_code == 413
    assert "too large to decode safely" in answer.json()["error"]


def test_the_api_key_is_required_on_every_endpoint(server):
    url = server[0]
    for path in ("/predict", "/info", "/health", "/metrics"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            method = requests.post if path == "/predict" else requests.get
            answer = method(f"{url}{path}", headers=headers, timeout=10)
            assert answer.status_code == 401, (path, headers)
            assert "API key" in answer.json()["error"]


def test_health_info_and_metrics(server, trained_run):
    url = server[0]
    assert requests.get(f"{url}/health", headers=AUTH, timeout=10).text == "ok"
    info = requests.get(f"{url}/info", headers=AUTH, timeout=10).json()["model"]
    predictor = Predictor.load(trained_run)
    assert info["classes"] == predictor.class_names
    assert info["backend"] == "torch" and info["preprocessing"]["size"] == predictor.meta.image_size
    assert len(info["digest"]) == 64 and info["scenes_version"]
    post(url, files={"file": ("ok.png", png_bytes())})
    post(url, files={"file": ("empty.png", b"")})
    text = requests.get(f"{url}/metrics", headers=AUTH, timeout=10).text
    assert 'scenes_requests_total{path="/predict",status="200"}' in text
    assert 'scenes_requests_total{path="/predict",status="400"}' in text
    assert "scenes_request_seconds_bucket" in text and "scenes_batch_photos_count" in text
    assert "scenes_queue_depth 0.0" in text


def test_a_request_over_the_timeout_gets_503():
    async def slow_app(scope, receive, send):
        await asyncio.sleep(5)

    gate = Gate(slow_app, GateOptions(classes=3, max_upload_bytes=2**20, timeout=0.2))
    body = png_bytes()
    scope = {
        "type": "http",
        "path": "/predict",
        "method": "POST",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    document = json.dumps({"image": base64.b64encode(body).decode()}).encode()
    sent = []

    async def receive():
        return {"type": "http.request", "body": document, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(gate(scope, receive, send))
    assert sent[0]["status"] == 503
    assert "--timeout" in json.loads(sent[1]["body"])["error"]


def test_sigterm_answers_the_request_in_flight_then_exits_0(server, tmp_path):
    """Last of the tests that use the shared server: it stops it."""
    url, proc, log = server
    photo = Image.new("RGB", (1200, 900), (10, 120, 40))
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    many = [("files", (f"p{i}.png", buffer.getvalue())) for i in range(40)]
    answers = []
    client = threading.Thread(target=lambda: answers.append(post(url, files=many)))
    client.start()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    client.join(60)
    assert proc.wait(60) == 0, log.read_text()
    assert answers and answers[0].status_code == 200, log.read_text()
    assert len(answers[0].json()["results"]) == 40
    assert "POST /predict 200" in log.read_text()


def test_the_triton_repository_has_the_graph_config_and_labels(fresh_run, tmp_path):
    import onnx

    from scenes.cli import main

    assert main(["serve", "--run", str(fresh_run), "--triton-repo", str(tmp_path / "repo")]) == 0
    model = tmp_path / "repo" / "scenes"
    predictor = Predictor.load(fresh_run)
    size, classes = predictor.meta.image_size, predictor.class_names
    config = (model / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "dynamic_batching" in config
    assert f"dims: [ 3, {size}, {size} ]" in config and f"dims: [ {len(classes)} ]" in config
    assert (model / "labels.txt").read_text().split() == classes
    graph = onnx.load(str(model / "1" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["logits", "features"]
    width = graph.output[1].type.tensor_type.shape.dim[1].dim_value
    assert width > 0 and f"dims: [ {width} ]" in config


def test_mistakes_are_refused_before_anything_starts(trained_run, tmp_path, capsys, monkeypatch):
    from scenes.cli import main

    monkeypatch.delenv("SCENES_NO_SUCH_KEY", raising=False)
    argv = ["serve", "--run", str(trained_run), "--api-key-env", "SCENES_NO_SUCH_KEY"]
    assert main(argv) == 2
    assert (
        "SCENES_NO_SUCH_KEY: that environment variable is empty or unset" in capsys.readouterr().err
    )
    assert main(["serve", "--run", str(tmp_path / "no-run")]) == 2
    assert "no model bundle" in capsys.readouterr().err


@pytest.fixture
def restored_threads():
    import torch

    from scenes.serve import cpu_threads

    before, handler = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    yield cpu_threads
    torch.set_num_threads(before)
    cpu_threads._share = None
    signal.signal(signal.SIGINT, handler)  # a worker's setup ignores Ctrl-C


def test_each_worker_computes_on_its_share_of_the_cores(fresh_run, restored_threads, monkeypatch):
    """Two workers on 4 cores: 2 threads each in PyTorch, ONNX Runtime and OpenVINO (each
    would start one per core, and two workers would then thrash on the cores)."""
    import torch

    from scenes.serve.http_model import ModelOptions, ScenesAPI
    from scenes.serve.runners import OnnxRunner, OpenVinoRunner

    monkeypatch.setattr(restored_threads, "cores", lambda: 4)
    api = ScenesAPI(ModelOptions(str(fresh_run), workers=2), 1, 0.0)
    api.setup("cpu")
    assert torch.get_num_threads() == 2 and restored_threads.share() == 2
    for fmt in ("onnx", "openvino"):
        Predictor.load(fresh_run, backend=fmt, device="cpu")  # exported here
    meta = api.predictor.meta
    onnx = OnnxRunner(fresh_run / "model" / "model.onnx", meta, "cpu")
    assert onnx.session.get_session_options().intra_op_num_threads == 2
    openvino = OpenVinoRunner(fresh_run / "model" / "openvino" / "model.xml", meta, "cpu")
    assert int(openvino.compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    restored_threads.limit(1)  # one worker: every core, as without a limit
    assert torch.get_num_threads() == 4
    restored_threads.limit(1, threads=1)  # --threads 1
    assert torch.get_num_threads() == 1 and restored_threads.share() == 1
