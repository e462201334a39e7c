"""The web app as a user meets it: a live server, gradio_client, and a real headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import scenes
from scenes.cli import main
from scenes.errors import UsageError
from scenes.serve.app import API_NAME, build_app
from scenes.serve.app_files import example_images, own_upload_folder
from scenes.serve.heatmaps import explain_image
from scenes.serve.predictor import Predictor

from conftest import INTEL_TRAIN, make_folder, make_image, needs_intel

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NOT_AN_IMAGE = "is not an image this app can read"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(demo) -> str:
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
    )
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    photos = make_folder(tmp_path_factory.mktemp("examples"), ["cat_a", "cat_b"], per_class=1)
    demo = build_app(Predictor.load(trained_run), example_images(photos))
    yield launch(demo)
    demo.close()


@pytest.fixture(scope="module")
def real_photo():
    if not INTEL_TRAIN.is_dir():
        pytest.skip(f"no {INTEL_TRAIN}")
    return sorted((INTEL_TRAIN / "sea").iterdir())[0]


@needs_intel
def test_client_uploads_a_real_photo_and_gets_three_labels_and_the_heatmap(
    server, real_photo, trained_run
):
    result, heatmap, answer = Client(server, verbose=False).predict(
        handle_file(str(real_photo)), api_name="/predict"
    )
    confidences = result["confidences"]
    # The model knows coloured squares only: a real photo is none of its classes.
    assert answer == "none of the known classes"
    assert len(confidences) == 3
    assert result["label"] == confidences[0]["label"]
    assert sum(c["confidence"] for c in confidences) == pytest.approx(1.0, abs=1e-4)
    predictor = Predictor.load(trained_run)
    expected = predictor.predict(real_photo)
    assert expected.accepted is False
    assert [(c["label"], c["confidence"]) for c in confidences] == [
        (lab, pytest.approx(p, abs=1e-6)) for lab, p in expected
    ]
    # The heatmap of the top class blended on the photo as the model saw it, losslessly sent.
    with Image.open(heatmap) as image:
        assert image.format == "PNG"
        served = np.asarray(image.convert("RGB"))
    own = explain_image(predictor, real_photo).overlay()
    assert served.shape == own.shape == (32, 32, 3)
    assert np.abs(served.astype(int) - own.astype(int)).max() <= 1


def test_without_explain_the_api_returns_the_labels_and_the_answer(trained_run, tmp_path):
    demo = build_app(Predictor.load(trained_run), explain=False)
    try:
        result, answer = Client(launch(demo), verbose=False).predict(
            handle_file(str(make_image(tmp_path / "red.jpg", (220, 40, 40)))), api_name="/predict"
        )
    finally:
        demo.close()
    assert result["label"] == answer == "cat_a" and len(result["confidences"]) == 3


def test_odd_photos_work_and_bad_uploads_get_a_clear_message(server, tmp_path):
    client = Client(server, verbose=False)
    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (30, 200, 30)).save(big)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 40), (200, 30, 30)).save(rotated, exif=exif.tobytes())
    for path in (
        make_image(tmp_path / "gray.png", (200, 200, 200), mode="L"),
        make_image(tmp_path / "rgba.png", (30, 30, 200), mode="RGBA"),
        make_image(tmp_path / "photo.webp", (30, 30, 200)),
        big,
        rotated,
    ):
        result, heatmap, _answer = client.predict(handle_file(str(path)), api_name="/predict")
        assert len(result["confidences"]) == 3, path.name
        assert Image.open(heatmap).size == (32, 32), path.name
    assert client.predict(handle_file(str(big)), api_name="/predict")[0]["label"] == "cat_b"

    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    with pytest.raises(Exception, match=NOT_AN_IMAGE):
        client.predict(handle_file(str(text)), api_name="/predict")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 Mpx: a tiny file, a huge decode
    with pytest.raises(Exception, match="too large to decode safely"):
        client.predict(handle_file(str(bomb)), api_name="/predict")
    # the server keeps serving
    good = make_image(tmp_path / "after.jpg", (220, 40, 40))
    assert client.predict(handle_file(str(good)), api_name="/predict")[0]["label"] == "cat_a"


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _upload(driver, path):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))


def _top_labels(driver, timeout=60.0):
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = driver.find_elements(By.CSS_SELECTOR, "button.confidence-set")
        if len(rows) == 3 and all(r.text.strip() for r in rows):
            return [r.text.split("\n")[0].strip() for r in rows]
        time.sleep(0.3)
    raise AssertionError("no top-3 labels appeared in the page")


def _shown_percentages(driver) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "button.confidence-set"):
        label, _, percent = row.text.strip().partition("\n")
        shown[label.strip()] = float(percent.strip().rstrip("%"))
    return shown


def _heatmap_size(driver, timeout=60.0) -> tuple[int, int]:
    """Natural size of the heatmap image once the browser has loaded and decoded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = driver.execute_script(
            "const img = document.querySelector('#heatmap img');"
            "return img && img.complete && img.naturalWidth ?"
            " [img.naturalWidth, img.naturalHeight] : null;"
        )
        if size:
            return tuple(size)
        time.sleep(0.3)
    raise AssertionError("no heatmap image appeared in the page")


def test_browser_upload_shows_top3_and_heatmap_then_survives_a_bad_upload(
    server, browser, tmp_path, trained_run
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 60).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
    )
    _upload(browser, make_image(tmp_path / "red.jpg", (220, 40, 40), size=(150, 150)))
    labels = _top_labels(browser)
    assert labels[0] == "cat_a" and sorted(labels) == ["cat_a", "cat_b", "cat_c"]
    # the page shows the Predictor's probabilities, as percentages
    shown = _shown_percentages(browser)
    expected = Predictor.load(trained_run).predict(tmp_path / "red.jpg")
    assert list(shown) == [label for label, _ in expected]
    for label, prob in expected:
        assert abs(shown[label] - 100 * prob) <= 1.0, (label, shown[label], prob)
    assert _heatmap_size(browser) == (32, 32)  # the model's input size

    browser.get(server)
    WebDriverWait(browser, 60).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
    )
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    _upload(browser, bad)
    WebDriverWait(browser, 60).until(
        lambda d: NOT_AN_IMAGE in d.find_element(By.TAG_NAME, "body").text
    )

    browser.get(server)  # a fresh page, same server: the next good upload still works
    WebDriverWait(browser, 60).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
    )
    _upload(browser, make_image(tmp_path / "green.png", (40, 200, 40), size=(150, 150)))
    assert _top_labels(browser)[0] == "cat_b"


def test_importing_and_building_the_app_writes_nothing_into_the_package(trained_run):
    """Gradio writes a ``.pyi`` stub beside the module of any component class defined outside
    Gradio; the app defines none, so the source tree stays as it is. In a fresh interpreter:
    here the app module is already imported."""
    package = Path(scenes.__file__).resolve().parent

    def listing() -> list[Path]:
        return sorted(
            p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts
        )

    before = listing()
    code = (
        "import sys; from scenes.serve.app import build_app; from scenes.serve.predictor import Predictor; "
        "build_app(Predictor.load(sys.argv[1], device='cpu'), explain=False)"
    )
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    subprocess.run([sys.executable, "-c", code, str(trained_run)], env=env, check=True, timeout=600)
    assert listing() == before
    assert not list(package.rglob("*.pyi")), "a generated stub in the source tree"


def call_api_raw(server: str, payload: dict) -> tuple[str, str]:
    """The /predict endpoint called over HTTP with ``payload`` as the photo, as any client
    may (gradio_client would upload a local file first): (event, data) of the answer."""
    import httpx

    started = httpx.post(
        f"{server}gradio_api/call/{API_NAME}", json={"data": [payload]}, timeout=60
    )
    started.raise_for_status()
    event_id = started.json()["event_id"]
    stream = httpx.get(f"{server}gradio_api/call/{API_NAME}/{event_id}", timeout=120)
    lines = [line for line in stream.text.splitlines() if line.strip()]
    event = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("event:"))
    data = "\n".join(line.split(":", 1)[1].strip() for line in lines if line.startswith("data:"))
    return event, data


@needs_intel
def test_a_path_outside_the_upload_folder_is_refused_through_the_api(server, real_photo):
    """A client naming a file on the server (here a real photo, readable by the server) gets
    no answer about it: only what was uploaded to this app is read."""
    payload = {"path": str(real_photo), "meta": {"_type": "gradio.FileData"}}
    event, data = call_api_raw(server, payload)
    assert event == "error", data
    assert "confidences" not in data


def test_the_handler_itself_refuses_paths_outside_the_upload_folder(tmp_path):
    import gradio as gr

    from scenes.serve.app_files import uploaded_file

    uploads = tmp_path / "uploads"
    inside = make_image(uploads / "abc" / "up.jpg", (30, 30, 200))
    outside = make_image(tmp_path / "secret.jpg", (30, 30, 200))
    assert uploaded_file({"path": str(inside)}, uploads) == str(inside.resolve())
    assert uploaded_file(None, uploads) is None
    for path in (outside, uploads / ".." / "secret.jpg", uploads / "abc" / "missing.jpg"):
        with pytest.raises(gr.Error, match="Only a photo uploaded to this page"):
            uploaded_file({"path": str(path)}, uploads)
    (uploads / "link.jpg").symlink_to(outside)
    with pytest.raises(gr.Error):
        uploaded_file({"path": str(uploads / "link.jpg")}, uploads)
    with pytest.raises(gr.Error, match="did not arrive"):
        uploaded_file({"path": None, "url": "data:image/png;base64,AAAA"}, uploads)


def test_the_bomb_guard_holds_whatever_the_process_warning_filters_are(tmp_path):
    import warnings

    import gradio as gr

    from scenes.serve.app_files import check_pixel_count

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 Mpx: over the limit, under Pillow's error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as another thread may have left them
        with pytest.raises(gr.Error, match="too large to decode safely"):
            check_pixel_count(str(bomb))
    check_pixel_count(str(make_image(tmp_path / "ok.jpg", (1, 2, 3))))


def test_a_server_failure_is_logged_once_and_not_called_a_bad_image(
    trained_run, tmp_path, caplog, capfd
):
    import logging

    predictor = Predictor.load(trained_run)
    demo = build_app(predictor, explain=False)
    client = Client(launch(demo), verbose=False)
    try:
        bad = tmp_path / "notes.jpg"
        bad.write_text("this is not a photo")
        with caplog.at_level(logging.INFO, logger="scenes.serve"):
            with pytest.raises(Exception, match=NOT_AN_IMAGE):
                client.predict(handle_file(str(bad)), api_name="/predict")
        records = [r for r in caplog.records if r.name.startswith("scenes.serve.app")]
        assert len(records) == 1 and records[0].exc_info is None
        assert "Traceback" not in capfd.readouterr().err  # no 47-line double traceback
        caplog.clear()

        def out_of_memory(*args, **kwargs):
            raise RuntimeError("CUDA out of memory (simulated)")

        predictor.forward = out_of_memory
        photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
        with caplog.at_level(logging.INFO, logger="scenes.serve"):
            with pytest.raises(Exception, match="server failed") as err:
                client.predict(handle_file(str(photo)), api_name="/predict")
        assert NOT_AN_IMAGE not in str(err.value)
        records = [r for r in caplog.records if r.name.startswith("scenes.serve.app")]
        assert len(records) == 1 and records[0].exc_info is not None
        assert "out of memory" in str(records[0].exc_info[1])
    finally:
        demo.close()


def test_a_port_in_use_names_the_option_that_fixes_it(trained_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["app", "--run", str(trained_run), "--port", str(port), "--no-explain"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--port" in err and "GRADIO_SERVER_PORT" not in err


def test_the_app_reads_only_its_own_upload_folder_not_the_hosts_shared_one(trained_run, tmp_path):
    """Gradio's default upload folder (/tmp/gradio) is shared by every Gradio app on the host:
    a file another app was sent there is not read; the app's own uploads are."""
    import tempfile

    default = Path(tempfile.gettempdir(), "gradio").resolve()  # Gradio's, for every app
    default.mkdir(exist_ok=True)
    shared = Path(tempfile.mkdtemp(dir=default))
    try:
        elsewhere = make_image(shared / "sent-to-another-app.jpg", (220, 40, 40))
        with own_upload_folder() as folder:
            assert os.environ["GRADIO_TEMP_DIR"] == str(folder)
            assert (folder.stat().st_mode & 0o777) == 0o700
            demo = build_app(Predictor.load(trained_run), explain=False)
            try:
                server = launch(demo)
                event, data = call_api_raw(
                    server, {"path": str(elsewhere), "meta": {"_type": "gradio.FileData"}}
                )
                assert event == "error" and "confidences" not in data, data
                photo = make_image(tmp_path / "red.jpg", (220, 40, 40))
                result, _ = Client(server, verbose=False).predict(
                    handle_file(str(photo)), api_name="/predict"
                )
                assert result["label"] == "cat_a"
                assert list(folder.rglob("red.jpg"))  # the upload landed in the app's folder
            finally:
                demo.close()
        assert not folder.exists() and os.environ.get("GRADIO_TEMP_DIR") != str(folder)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_run_folder_cannot_choose_the_files_the_app_serves(fresh_run, tmp_path, monkeypatch):
    """A received run's split.csv names a private photo and a secret as validation photos:
    ``scenes app`` reads neither (the old page decoded the photo and served a copy of it)."""
    import csv

    import gradio as gr

    from scenes.serve import app

    private = make_image(tmp_path / "home" / "private.png", (7, 77, 177), size=(64, 64))
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    split = fresh_run / "split.csv"
    with split.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    planted = iter([private, secret])
    for row in rows:
        if row["split"] == "val":
            row["path"] = str(next(planted, row["path"]))
    with split.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(
        Image, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k)
    )
    seen = []

    def serve(demo, *args):
        seen.append([b for b in demo.blocks.values() if isinstance(b, gr.Dataset)])
        return 0

    monkeypatch.setattr(app, "serve", serve)
    assert app.run_app(str(fresh_run), device="cpu", explain=False, compile=False) == 0
    assert seen == [[]]  # no examples unless --examples names a folder
    assert str(private) not in opened and str(secret) not in opened


def test_examples_are_copies_of_photos_from_the_folder_named(trained_run, tmp_path):
    """``--examples DIR``: one photo per class subfolder, offered and served as copies in the
    app's own folder; the originals' paths are not served."""
    import json

    import httpx

    folder_given = make_folder(tmp_path / "examples", ["cat_a", "cat_b", "cat_c"], per_class=2)
    examples = example_images(folder_given)
    assert [Path(e).parent.name for e in examples] == ["cat_a", "cat_b", "cat_c"]
    flat = tmp_path / "flat"
    for i in range(6):
        make_image(flat / f"{i}.png", (10 * i, 0, 0))
    assert [Path(e).name for e in example_images(flat)] == ["0.png", "1.png", "2.png", "3.png"]
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(UsageError, match="--examples"):
            example_images(bad)
    with own_upload_folder() as folder:
        demo = build_app(Predictor.load(trained_run), examples, explain=False)
        try:
            server = launch(demo)
            config = json.dumps(demo.get_config_file())
            assert not [p for p in examples if p in config]  # copies only
            copies = sorted(folder.rglob("example-*.png"))
            assert len(copies) == 3 and str(copies[0]) in config
            answer = httpx.get(f"{server}gradio_api/file={examples[0]}", timeout=30)
            assert answer.status_code >= 400
            served = httpx.get(f"{server}gradio_api/file={copies[0]}", timeout=30)
            assert served.status_code == 200 and served.content == copies[0].read_bytes()
        finally:
            demo.close()


def test_scenes_app_builds_and_serves_its_page_inside_its_own_upload_folder(
    trained_run, monkeypatch
):
    import gradio as gr

    from scenes.serve import app

    seen = []

    def serve(demo, *args):
        photo = next(b for b in demo.blocks.values() if isinstance(b, gr.Image))
        seen.append((os.environ.get("GRADIO_TEMP_DIR"), photo.GRADIO_CACHE))
        return 0

    monkeypatch.setattr(app, "serve", serve)
    assert app.run_app(str(trained_run), device="cpu", explain=False, compile=False) == 0
    ((folder, cache),) = seen
    assert folder == cache and Path(folder).name.startswith("scenes-app-")
    assert not Path(folder).exists()  # removed when the app stops


def test_a_port_in_use_is_named_as_the_users_to_change():
    """``scenes app`` and ``scenes review`` launch through ``launch_page``: a taken port is a
    usage error naming it, not Gradio's traceback."""
    import gradio as gr

    from scenes.serve.app import launch_page

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with gr.Blocks() as page:
            gr.Markdown("a page")
        try:
            with pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{port}.*--port"):
                launch_page(page, "127.0.0.1", port, share=False, quiet=True)
        finally:
            page.close()
