"""``scenes app``: a Gradio page where you drop a photo and see the top-3 classes and, beside
them, the heatmap of where the model saw the top class.

The page calls the same ``Predictor`` as ``scenes predict`` (preprocessing from model.json),
so it cannot disagree with ``scenes evaluate``; the heatmap is computed in the same request
(``Predictor.explain_pixels``). The function is also an API endpoint (``/predict``) for
``gradio_client``: it returns the label dict, and with the heatmap on, a pair
(label dict, path of the heatmap image).
"""

from __future__ import annotations

import base64
import mimetypes
import warnings
from pathlib import Path

import gradio as gr
from PIL import Image

from .data.files import content_digest
from .explain import explain_image
from .models.bundle import resolve_bundle_dir
from .predict import Predictor
from .rundir import read_split

API_NAME = "predict"
MAX_UPLOAD = "25mb"
READABLE = "JPEG, PNG, WebP, BMP, GIF or TIFF"


def _unreadable(name: str, exc: BaseException) -> gr.Error:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return gr.Error(
            f"{name} is too large to decode safely ({exc}). Please upload a smaller photo."
        )
    return gr.Error(f"{name} is not an image this app can read. Please upload a {READABLE} photo.")


def uploaded_file(payload: dict | None, cache_dir: str) -> str | None:
    """The path of the uploaded file itself, for ``Predictor`` to decode.

    The page's event runs with ``preprocess=False``, so it receives the upload as Gradio's
    file data (a dict with ``path`` and ``url``) rather than ``gr.Image``'s preprocessed value:
    that preprocessing converts the upload to ``image_mode`` and re-encodes it (RGBA loses its
    alpha instead of being composited on white, 16-bit grayscale is clipped), so the page would
    answer differently from ``scenes predict`` for the same file. Decoding is left to
    ``Predictor`` alone, which reads it exactly as training and evaluation do. (A ``gr.Image``
    subclass overriding ``preprocess`` would do the same, but Gradio writes a ``.pyi`` stub
    beside the module of every component class defined outside Gradio.)
    """
    if payload is None:
        return None
    url = payload.get("url")
    if url and url.startswith("data:"):
        return _save_data_url(url, cache_dir)
    if payload.get("path") is None:
        raise gr.Error("The upload did not arrive; please try again.")
    return str(payload["path"])


def _save_data_url(url: str, cache_dir: str) -> str:
    """A base64 ``data:`` upload (e.g. pasted) as a file holding exactly its bytes."""
    header, _, encoded = url.partition(",")
    suffix = mimetypes.guess_extension(header.removeprefix("data:").split(";")[0]) or ""
    data = base64.b64decode(encoded)
    folder = Path(cache_dir) / content_digest(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pasted{suffix}"
    path.write_bytes(data)
    return str(path)


def example_images(run: str | Path, count: int = 4) -> list[str]:
    """A few validation photos of the run, one per class (when its split.csv lists them)."""
    try:
        rows = read_split(Path(run))
    except FileNotFoundError:
        return []
    picked: dict[str, str] = {}
    for row in rows:
        if row.split == "val" and row.label not in picked and row.path.is_file():
            picked[row.label] = str(row.path)
    return list(picked.values())[:count]


def build_app(
    predictor: Predictor, examples: list[str] | None = None, explain: bool = True
) -> gr.Blocks:
    """The page; ``explain=False`` leaves out the heatmap (labels only, less work)."""
    names = ", ".join(predictor.class_names)
    if explain:
        predictor.explainer()  # choose the layer now, not in the first user's request

    def classify(upload: dict | None):
        path = uploaded_file(upload, photo.GRADIO_CACHE)
        if path is None:
            raise gr.Error("Drop or paste a photo first.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if not explain:
                    return dict(predictor.predict(path, top_k=3))
                found = explain_image(predictor, path, top_k=3)
        except Exception as exc:
            raise _unreadable(Path(path).name, exc) from exc
        return dict(found.top), found.overlay()

    with gr.Blocks(title="scenes: what is in this photo?") as demo:
        gr.Markdown(f"## What scene is this?\nDrop or paste a photo. Classes: {names}.")
        with gr.Row():
            photo = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Photo")
            labels = gr.Label(num_top_classes=3, label="Top 3")
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
        # preprocess=False: the upload reaches ``classify`` untouched (see ``uploaded_file``)
        photo.change(classify, inputs=photo, outputs=outputs, api_name=API_NAME, preprocess=False)
        if examples:
            gr.Examples(examples=examples, inputs=photo)
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
) -> int:
    resolve_bundle_dir(run)  # fail early, with the bundle's own message
    predictor = Predictor.load(run, backend=backend, device=device)
    demo = build_app(predictor, example_images(run), explain=explain)
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, show_error=True)
    return 0
