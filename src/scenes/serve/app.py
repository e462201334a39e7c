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
Gradio app on the host shares. The page serves no path a run folder names: its examples come from
a folder named on the command line (``--examples DIR``), as copies the app makes in its upload
folder (``copy_examples``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import gradio as gr

from ..errors import UsageError
from ..models.bundle import resolve_bundle_dir
from .answers import Prediction
from .app_files import (
    copy_examples,
    decode_upload,
    example_images,
    own_upload_folder,
    uploaded_file,
    user_error,
)
from .heatmaps import explain_batch
from .predict import UNKNOWN
from .predictor import Predictor

API_NAME = "predict"
MAX_UPLOAD = "25mb"

log = logging.getLogger(__name__)


def verdict(found: Prediction) -> str:
    """The answer in words: the top class; "none of the known classes" for a photo the
    acceptance turned down (the top 3 stay beside it, as a guess); multi-label: the labels."""
    if found.accepted is False:
        return UNKNOWN
    if found.labels is not None:
        return ", ".join(found.labels) or "no label"
    return found[0][0]


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
    with gr.Blocks(title="scenes: what is in this photo?") as demo:
        gr.Markdown(f"## What scene is this?\nDrop or paste a photo. Classes: {names}.")
        photo, outputs = _layout(shown, explain)
        classify = _classifier(predictor, lambda: photo.GRADIO_CACHE, shown, explain, tta)
        # preprocess=False: the upload reaches ``classify`` untouched (see ``uploaded_file``)
        photo.change(classify, inputs=photo, outputs=outputs, api_name=API_NAME, preprocess=False)
        offered = copy_examples(predictor, examples, photo.GRADIO_CACHE) if examples else []
        if offered:
            gr.Examples(examples=offered, inputs=photo)
    # Inference holds the CPU: two at a time, the rest wait in line rather than pile up.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def _layout(shown: int, explain: bool) -> tuple[gr.Image, list]:
    """The photo input and the outputs, in the order ``classify`` returns them."""
    with gr.Row():
        photo = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Photo")
        with gr.Column():
            answer = gr.Textbox(label="Answer", interactive=False, elem_id="verdict")
            labels = gr.Label(num_top_classes=shown, label="Top 3" if shown == 3 else "Every class")
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
    return photo, outputs


def _classifier(predictor: Predictor, upload_folder, shown: int, explain: bool, tta: bool):
    """The page's handler: the uploaded file (only from ``upload_folder()``) to (labels,
    heatmap, answer), or (labels, answer) without the heatmap."""

    def classify(upload: dict | None):
        path = uploaded_file(upload, upload_folder())
        if path is None:
            raise user_error("Drop or paste a photo first.")
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
            raise user_error(
                "The server failed to classify this photo (an internal error, logged on the "
                "server). Please try again later."
            ) from None

    return classify


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
    examples: str | None = None,
) -> int:
    resolve_bundle_dir(run)  # fail early, with the bundle's own message
    predictor = Predictor.load(run, backend=backend, device=device, accept_all=accept_all)
    with own_upload_folder():
        offered = example_images(examples) if examples else []
        demo = build_app(predictor, offered, explain=explain, tta=tta)
        return serve(demo, host, port, share, compile and backend == "torch", predictor)


def serve(
    demo: gr.Blocks, host: str, port: int, share: bool, compile: bool, predictor: Predictor
) -> int:
    """Launch the page and serve until stopped (``compile``: ``torch.compile`` the network
    beside it)."""
    launch_page(demo, host, port, share)
    if compile:
        # A server lives long: compile once, beside it; requests are answered by the eager
        # network until the compiled one has run its first photo.
        threading.Thread(target=compile_quietly, args=(predictor,), daemon=True).start()
    demo.block_thread()
    return 0


def launch_page(page: gr.Blocks, host: str, port: int, share: bool, **options) -> str:
    """Start serving a page (the app's, the review's) without blocking; its local address.
    A port in use is the user's to change, named."""
    try:
        _, local_url, _ = page.launch(
            server_name=host,
            server_port=port,
            max_file_size=MAX_UPLOAD,
            show_error=True,
            share=share,
            prevent_thread_lock=True,
            **options,
        )
    except OSError as exc:
        if "port" not in str(exc).lower():
            raise
        raise UsageError(
            f"cannot serve on {host}:{port}: the port is in use (or not allowed); "
            "pass another --port"
        ) from None
    return local_url


def compile_quietly(predictor: Predictor) -> None:
    if predictor.compile_now(required=False):
        log.info("the network is compiled (torch.compile): requests are served by it now")
