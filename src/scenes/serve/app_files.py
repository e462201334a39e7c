"""The files ``scenes app`` reads and serves. What a client sends is data: only a file inside
this app's own upload folder is read (``own_upload_folder``, ``uploaded_file``), its pixel
count is checked before it is decoded, and a file that does not decode is the user's to fix.
The examples the page offers come from a folder named on the command line, never from a
run folder, and are served as copies the app writes into its upload folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ..atomic import replacing_path
from ..data.files import list_files
from ..errors import UsageError
from .pixels import MAX_PIXELS, pixel_count
from .predictor import Predictor

READABLE = "JPEG, PNG, WebP, BMP, GIF or TIFF"

log = logging.getLogger(__name__)


def user_error(message: str) -> gr.Error:
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
        raise user_error("The upload did not arrive; please try again.")
    path = Path(raw).resolve()
    if not path.is_relative_to(Path(upload_folder).resolve()) or not path.is_file():
        log.warning("refused a request for %s: not a file uploaded to this app", raw)
        raise user_error("Only a photo uploaded to this page can be classified; please upload it.")
    return str(path)


def check_pixel_count(path: str) -> None:
    """Refuse a decompression bomb (a small file of a huge image) from its header alone, for
    this request only: no process-wide warning filter is touched while others decode."""
    pixels = pixel_count(path)  # None: not an image at all, decoding says so next
    if pixels is not None and pixels > MAX_PIXELS:
        raise user_error(
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
        raise user_error(
            f"{Path(path).name} is not an image this app can read. Please upload a {READABLE} photo."
        ) from None


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
    ``upload_folder``: the page offers and serves these copies, never the originals' paths.
    A file that is not an image or is too large to decode safely is left out."""
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
        with replacing_path(copy) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        copies.append(str(copy))
    return copies


def example_images(folder: str | Path, count: int = 4) -> list[str]:
    """A few photos from a folder the user named (``scenes app --examples DIR``): one per
    class subfolder when it has them (a labelled folder), else the first ``count`` images in
    name order. Candidates for ``copy_examples``, which the page serves instead. Never read
    from a run's ``split.csv``: a run folder may come from elsewhere, and it would choose
    which local files the page shows."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--examples {folder}: not a folder; name a folder of photos")
    picked: dict[str, str] = {}
    for path in list_files(root):
        parts = path.relative_to(root).parts
        group = parts[0] if len(parts) > 1 else str(path)  # a class subfolder, or the photo
        if group not in picked:
            picked[group] = str(path)
    if not picked:
        raise UsageError(f"--examples {folder}: no images in it (.jpg, .png, ...)")
    return list(picked.values())[:count]
