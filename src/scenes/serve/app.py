"""``scenes app``: a Gradio page where you drop a photo and see the top-3 classes and, beside
them, the heatmap of where the model saw the top class.

The page calls the same ``Predictor`` as ``scenes predict`` (preprocessing from model.json),
so it cannot disagree with ``scenes evaluate``; the heatmap is computed in the same request
(``Predictor.explain_pixels``). The function is also an API endpoint (``/predict``) for
``gradio_client``: it returns (label dict, answer) and, with the heatmap on, (label dict, path
of the heatmap image, answer); the answer is the top class in words, "none of the known
classes" for a photo unlike the training images, or the labels of a multi-label model.

What a client sends is data, never trusted: only a file inside this app's upload folder is
read, its pixel count is checked before it is decoded, and a file that does not decode is
told apart from a failure of the server (logged once, with its traceback). ``scenes app``
gives its process an upload folder of its own (``own_upload_folder``), not the one every
Gradio app on the host shares. The page serves no path a run folder names: its examples are
copies the app makes in that folder (``copy_examples``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ..errors import UsageError
from ..models.bundle import resolve_bundle_dir
from ..rundir import RunDir
from .answers import Prediction
from .heatmaps import explain_batch
from .pixels import MAX_PIXELS, pixel_count
from .predict import UNKNOWN
from .predictor import Predictor

API_NAME = "predict"
MAX_UPLOAD = "25mb"
READABLE = "JPEG, PNG, WebP, BMP, GIF or TIFF"

log = logging.getLogger(__name__)


def _user_error(message: str) -> gr.Error:
    # The user's mistake, not the server's: no traceback in the server's log.
    return gr.Error(message, print_exception=False)


def uploaded_file(payload: dict | None, upload_folder: str | Path) -> str | None:
    """The path of the uploaded file itself, for ``Predictor`` to decode.

    The page's event runs with ``preprocess=False``, so it receives the upload as Gradio's
    file data (a dict with ``path``) rather than ``gr.Image``'s preprocessed value: that
    preprocessing converts the upload to ``image_mode`` and re-encodes it (RGBA loses its
    alpha instead of being composited on white, 16-bit grayscale is clipped), so the page would
    answer differently from ``scenes predict`` for the same file. Decoding is left to
    ``Predictor`` alone, which reads it exactly as training and evaluation do. (A ``gr.Image``
    subclass overriding ``preprocess`` would do the same, but Gradio writes a ``.pyi`` stub
    beside the module of every component class defined outside Gradio.)

    The path comes from the client: anything outside ``upload_folder`` (where Gradio keeps
    what was uploaded to this app) is refused, whatever Gradio itself checked before.
    """
    if payload is None:
        return None
    raw = payload.get("path")
    if not raw:
        raise _user_error("The upload did not arrive; please try again.")
    path = Path(raw).resolve()
    if not path.is_relative_to(Path(upload_folder).resolve()) or not path.is_file():
        log.warning("refused a request for %s: not a file uploaded to this app", raw)
        raise _user_error("Only a photo uploaded to this page can be classified; please upload it.")
    return str(path)


def check_pixel_count(path: str) -> None:
    """Refuse a decompression bomb (a small file of a huge image) from its header alone, for
    this request only: no process-wide warning filter is touched while others decode."""
    pixels = pixel_count(path)
    if pixels is not None and pixels > MAX_PIXELS:
        raise _user_error(
            f"{Path(path).name} is too large to decode safely ({pixels:,} pixels; at most "
            f"{MAX_PIXELS:,}). Please upload a smaller photo."
        )


def decode_upload(predictor: Predictor, path: str) -> np.ndarray:
    """The photo as the model sees it; a file that does not decode is the user's to fix."""
    check_pixel_count(path)
    try:
        return predictor.load_image(path)
    except MemoryError:
        raise
    except Exception as exc:
        log.info(
            "upload %s is not a readable image (%s: %s)", Path(path).name, type(exc).__name__, exc
        )
        raise _user_error(
            f"{Path(path).name} is not an image this app can read. Please upload a {READABLE} photo."
        ) from None


def verdict(found: Prediction) -> str:
    """The answer in words: the top class; "none of the known classes" for a photo the
    acceptance turned down (the top 3 stay beside it, as a guess); multi-label: the labels."""
    if found.accepted is False:
        return UNKNOWN
    if found.labels is not None:
        return ", ".join(found.labels) or "no label"
    return found[0][0]


@contextlib.contextmanager
def own_upload_folder() -> Iterator[Path]:
    """A new private folder (mode 0700) as Gradio's upload folder while the block runs, then
    removed. Gradio's default, ``/tmp/gradio``, is shared by every Gradio app on the host, so
    this app would read what others were sent. Gradio keeps one upload folder per process
    (``GRADIO_TEMP_DIR``, read when a component is made, when the server starts and when a
    request's files are checked): the page is built and served inside this block."""
    folder = Path(tempfile.mkdtemp(prefix="scenes-app-"))
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)


def copy_examples(predictor: Predictor, paths: list[str], upload_folder: str | Path) -> list[str]:
    """Each example photo as the model sees it, written as a PNG into a new folder inside
    ``upload_folder``: the page offers and serves these copies, never a path that a run's
    ``split.csv`` named. A path that is not an image (a split.csv naming ``/etc/passwd``) or
    is too large to decode safely is left out."""
    folder = Path(upload_folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="examples-", dir=folder))
    copies = []
    for path in paths:
        try:
            pixels = decode_upload(predictor, path)
        except gr.Error:
            log.warning("example %s left out: not an image this app can read", path)
            continue
        copy = folder / f"example-{len(copies)}.png"
        Image.fromarray(pixels).save(copy)
        copies.append(str(copy))
    return copies


def example_images(run: str | Path, count: int = 4) -> list[str]:
    """A few validation photos of the run, one per class (when its split.csv lists them):
    candidates for ``copy_examples``, which the page serves instead."""
    run_dir = RunDir(run)
    if not run_dir.split_csv.is_file():
        return []
    picked: dict[str, str] = {}
    for row in run_dir.read_split():
        if row.split == "val" and row.label not in picked and row.path.is_file():
            picked[row.label] = str(row.path)
    return list(picked.values())[:count]


def build_app(
    predictor: Predictor,
    examples: list[str] | None = None,
    explain: bool = True,
    tta: bool = False,
) -> gr.Blocks:
    """The page; ``explain=False`` leaves out the heatmap (labels only, less work); ``tta``
    averages each photo's answer with its mirror image's, as ``predict --tta`` does;
    ``examples`` are offered as copies in the app's upload folder (``copy_examples``)."""
    names = ", ".join(predictor.class_names)
    # Multi-label: every class's probability, the labels over their thresholds in the answer.
    shown = 3 if predictor.meta.task == "multiclass" else len(predictor.class_names)
    if explain:
        predictor.explainer()  # choose the layer now, not in the first user's request

    def classify(upload: dict | None):
        path = uploaded_file(upload, photo.GRADIO_CACHE)
        if path is None:
            raise _user_error("Drop or paste a photo first.")
        pixels = decode_upload(predictor, path)
        try:
            if not explain:
                found = predictor.answers(pixels[None], tta).prediction(0, shown)
                return dict(found), verdict(found)
            explained = explain_batch(predictor, pixels[None], [path], top_k=shown, tta=tta)[0]
            return dict(explained.top), explained.overlay(), verdict(explained.top)
        except Exception:
            # Not the photo's fault: a bug, or the server out of memory. Logged once, whole;
            # the user is told it was the server.
            log.exception("classifying %s failed", Path(path).name)
            raise _user_error(
                "The server failed to classify this photo (an internal error, logged on the "
                "server). Please try again later."
            ) from None

    with gr.Blocks(title="scenes: what is in this photo?") as demo:
        gr.Markdown(f"## What scene is this?\nDrop or paste a photo. Classes: {names}.")
        with gr.Row():
            photo = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Photo")
            with gr.Column():
                answer = gr.Textbox(label="Answer", interactive=False, elem_id="verdict")
                labels = gr.Label(
                    num_top_classes=shown, label="Top 3" if shown == 3 else "Every class"
                )
            outputs = [labels]
            if explain:
                heatmap = gr.Image(
                    label="Where it saw the top class (Grad-CAM)",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="heatmap",
                )
                outputs.append(heatmap)
            outputs.append(answer)  # last: clients reading the labels first are unaffected
        # preprocess=False: the upload reaches ``classify`` untouched (see ``uploaded_file``)
        photo.change(classify, inputs=photo, outputs=outputs, api_name=API_NAME, preprocess=False)
        offered = copy_examples(predictor, examples, photo.GRADIO_CACHE) if examples else []
        if offered:
            gr.Examples(examples=offered, inputs=photo)
    # Inference holds the CPU: two at a time, the rest wait in line rather than pile up.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def run_app(
    run: str,
    host: str = "127.0.0.1",
    port: int = 7860,
    backend: str = "torch",
    device: str = "auto",
    explain: bool = True,
    tta: bool = False,
    share: bool = False,
    accept_all: bool = False,
    compile: bool = True,
) -> int:
    resolve_bundle_dir(run)  # fail early, with the bundle's own message
    predictor = Predictor.load(run, backend=backend, device=device, accept_all=accept_all)
    with own_upload_folder():
        demo = build_app(predictor, example_images(run), explain=explain, tta=tta)
        return serve(demo, host, port, share, compile and backend == "torch", predictor)


def serve(
    demo: gr.Blocks, host: str, port: int, share: bool, compile: bool, predictor: Predictor
) -> int:
    """Launch the page and serve until stopped (``compile``: ``torch.compile`` the network
    beside it)."""
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            max_file_size=MAX_UPLOAD,
            show_error=True,
            share=share,
            prevent_thread_lock=True,
        )
    except OSError as exc:
        if "port" not in str(exc).lower():
            raise
        raise UsageError(
            f"cannot serve on {host}:{port}: the port is in use (or not allowed); "
            "pass another --port"
        ) from None
    if compile:
        # A server lives long: compile once, beside it; requests are answered by the eager
        # network until the compiled one has run its first photo.
        threading.Thread(target=compile_quietly, args=(predictor,), daemon=True).start()
    demo.block_thread()
    return 0


def compile_quietly(predictor: Predictor) -> None:
    if predictor.compile_now(required=False):
        log.info("the network is compiled (torch.compile): requests are served by it now")
