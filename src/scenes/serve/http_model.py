"""The inference side of ``scenes serve``: a LitServe ``LitAPI`` whose worker processes each
load one ``Predictor`` and answer with it, so the HTTP answers are ``Predictor.predict``'s.

What reaches a worker was already checked by the HTTP side (``http_gate``): a JSON body
``{"images": [{"name", "data" (base64)}], "top_k"}``. A photo that does not decode is
answered ``{"error": ...}`` (the gate turns it into a 400), never raised: LitServe fails a
whole batch for one request's exception, and other clients' photos share the batch.

The same class is what a Ray Serve deployment would wrap: ``setup`` loads, ``predict`` takes
a list of requests' decoded photos and answers each (see docs/serving.md).
"""

from __future__ import annotations

import base64
import io
import logging
import signal
from dataclasses import dataclass

import litserve as ls
import numpy as np

from . import cpu_threads
from .answers import Prediction
from .predictor import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOptions:
    run: str
    backend: str = "torch"
    tta: bool = False
    workers: int = 1  # inference processes sharing the machine's cores
    threads: int | None = None  # compute threads of each (None: its share of the cores)


@dataclass
class Decoded:
    """One request in a worker: its photos' pixels (None when one did not decode) and top-k."""

    names: list[str]
    pixels: np.ndarray | None
    top_k: int
    error: str | None = None


def answer_json(found: Prediction) -> dict:
    """One photo's answer: top-k pairs, acceptance and, for multi-label, every probability."""
    answer: dict = {
        "predictions": [{"label": label, "probability": p} for label, p in found],
        "accepted": found.accepted,
    }
    if found.score is not None:
        answer["score"] = found.score
    if found.labels is not None:
        answer["labels"] = found.labels
        answer["probabilities"] = found.every
    return answer


class ScenesAPI(ls.LitAPI):
    """One ``Predictor`` per worker; a batch is every photo of the requests LitServe grouped."""

    def __init__(self, options: ModelOptions, max_batch_size: int = 1, batch_timeout=0.0):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.options = options

    def setup(self, device) -> None:
        # Ctrl-C reaches the whole process group: the main process drains, workers keep
        # answering what is in flight until it stops them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if str(device).startswith("cpu"):  # several workers: each on its share of the cores
            cpu_threads.limit(self.options.workers, self.options.threads)
        self.predictor = Predictor.load(self.options.run, backend=self.options.backend)
        # /health says ready only once a worker has answered a photo (LitServe marks a worker
        # ready when setup returns): the first client does not pay for lazy initialisation.
        size = self.predictor.meta.image_size
        self.predictor.answers(np.zeros((1, size, size, 3), np.uint8), self.options.tta)

    def decode_request(self, request: dict) -> Decoded:
        names = [str(item["name"]) for item in request["images"]]
        pixels = []
        for name, item in zip(names, request["images"]):
            try:
                data = io.BytesIO(base64.b64decode(item["data"]))
                pixels.append(self.predictor.load_image(data))
            except MemoryError:
                raise
            except Exception as exc:
                log.info("%s is not a readable image (%s: %s)", name, type(exc).__name__, exc)
                error = f"{name} is not an image scenes can read (JPEG, PNG, WebP, BMP, GIF, TIFF)"
                return Decoded(names, None, request["top_k"], error)
        return Decoded(names, np.stack(pixels), request["top_k"])

    def predict(self, requests: list[Decoded] | Decoded) -> list[dict] | dict:
        single = isinstance(requests, Decoded)
        group = [requests] if single else requests
        usable = [r for r in group if r.pixels is not None]
        answers = None
        if usable:
            pixels = np.concatenate([r.pixels for r in usable])
            answers = self.predictor.answers(pixels, self.options.tta)
        photos = sum(len(r.pixels) for r in usable)
        out, row = [], 0
        for request in group:
            if request.pixels is None:
                out.append({"error": request.error})
                continue
            found = [answers.prediction(row + i, request.top_k) for i in range(len(request.names))]
            row += len(request.names)
            out.append({"answers": [answer_json(f) for f in found], "batch_size": photos})
        return out[0] if single else out

    def encode_response(self, output: dict) -> dict:
        return output


class BatchedScenesAPI(ScenesAPI):
    """With ``--max-batch-size`` over 1: LitServe hands ``predict`` a list of requests."""

    def batch(self, inputs: list[Decoded]) -> list[Decoded]:
        return inputs  # ``predict`` joins the photos of the requests itself

    def unbatch(self, output: list) -> list:
        return output
