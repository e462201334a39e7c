"""The HTTP side of ``scenes serve``, one ASGI middleware in front of LitServe's app: the API
key, the upload limit, the request checks (``http_input``), the timeout, the answers' shape,
``/metrics`` and one log line per request.

LitServe hands a request's body to its inference workers as it came; a multipart upload does
not cross processes, and its errors answer ``{"detail": ...}``. So ``/predict`` is read and
checked here, forwarded as JSON ``{"images": [...], "top_k"}``, and every error leaves as
``{"error": "..."}``. Metrics live in this process (LitServe runs one API server here).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .http_input import ClientError, Photos, parse_photos

log = logging.getLogger("scenes.serve.http")


@dataclass(frozen=True)
class GateOptions:
    classes: int
    max_upload_bytes: int
    timeout: float
    api_key: str | None = None


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "scenes_requests", "HTTP requests by path and status", ["path", "status"], registry=r
        )
        self.latency = Histogram("scenes_request_seconds", "request latency", ["path"], registry=r)
        buckets = (1, 2, 4, 8, 16, 32, 64)
        self.batch = Histogram(
            "scenes_batch_photos",
            "photos in the network call that answered each request",
            buckets=buckets,
            registry=r,
        )
        self.in_flight = Gauge(
            "scenes_queue_depth", "predict requests not yet answered", registry=r
        )


class Gate:
    """ASGI middleware (``LitServer(middlewares=[(Gate, {"options": ...})])``)."""

    def __init__(self, app, options: GateOptions):
        self.app = app
        self.options = options
        self.metrics = Metrics()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        path, method = scope["path"], scope["method"]
        status, note = 500, ""
        try:
            if not self._authorized(scope):
                status, body = 401, {"error": "missing or wrong API key (Authorization: Bearer)"}
            elif path == "/metrics":
                status = 200
                await _send(send, 200, generate_latest(self.metrics.registry), b"text/plain")
                return
            elif path == "/predict" and method == "POST":
                status, body, note = await self._predict(scope, receive)
            else:
                status, body, kind = await _buffered(self.app, scope, receive)
                if isinstance(body, bytes):
                    await _send(send, status, body, kind)
                    return
            await _send(send, status, json.dumps(body).encode(), b"application/json")
        finally:
            seconds = time.monotonic() - started
            known = path if path in ("/predict", "/health", "/info", "/metrics") else "other"
            self.metrics.requests.labels(known, str(status)).inc()
            self.metrics.latency.labels(known).observe(seconds)
            log.info("%s %s %d %.0f ms%s", method, path, status, seconds * 1000, note)

    def _authorized(self, scope) -> bool:
        if self.options.api_key is None:
            return True
        given = dict(scope["headers"]).get(b"authorization", b"")
        expected = b"Bearer " + self.options.api_key.encode()
        return hmac.compare_digest(given, expected)

    async def _predict(self, scope, receive) -> tuple[int, dict, str]:
        self.metrics.in_flight.inc()
        try:
            body = await _read_body(scope, receive, self.options.max_upload_bytes)
            photos = await parse_photos(scope, body, self.options.classes)
            forward = _as_json(photos)
            status, answer, _ = await asyncio.wait_for(
                _buffered(self.app, _json_scope(scope, forward), _replay(forward)),
                self.options.timeout,
            )
        except ClientError as exc:
            return exc.status, {"error": exc.message}, f" ({exc.message})"
        except asyncio.TimeoutError:
            message = f"not answered within --timeout {self.options.timeout:g} s; try again later"
            return 503, {"error": message}, ""
        finally:
            self.metrics.in_flight.dec()
        return _shaped(status, answer, photos, self.metrics)


def _shaped(status: int, answer, photos: Photos, metrics: Metrics) -> tuple[int, dict, str]:
    """A worker's answer as the client gets it: one photo's fields, or ``results``."""
    if status != 200 or not isinstance(answer, dict):
        return status, answer, ""
    if "error" in answer:
        return 400, answer, f" ({answer['error']})"
    metrics.batch.observe(answer["batch_size"])
    answers = answer["answers"]
    if photos.several:
        results = [{"name": n, **a} for n, a in zip(photos.names, answers)]
        return 200, {"results": results}, f" ({len(results)} photos)"
    return 200, answers[0], ""


async def _read_body(scope, receive, limit: int) -> bytes:
    too_large = ClientError(413, f"the upload is over --max-upload-mb ({limit / 2**20:g} MB)")
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientError(400, "the client went away before the body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _as_json(photos: Photos) -> bytes:
    images = [
        {"name": n, "data": base64.b64encode(d).decode()} for n, d in zip(photos.names, photos.data)
    ]
    return json.dumps({"images": images, "top_k": photos.top_k}).encode()


def _json_scope(scope, body: bytes) -> dict:
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {**scope, "headers": headers}


def _replay(body: bytes):
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:  # the body is consumed: wait as a live connection would
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _buffered(app, scope, receive) -> tuple[int, dict | bytes, bytes]:
    """Run the app, keep its answer: JSON (errors as ``{"error"}``), or bytes otherwise,
    and its content type."""
    start: dict = {}
    parts: list[bytes] = []

    async def keep(message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, keep)
    status, raw = start.get("status", 500), b"".join(parts)
    kind = dict(start.get("headers", [])).get(b"content-type", b"text/plain")
    if not kind.startswith(b"application/json"):
        return status, raw, kind
    body = json.loads(raw)
    if status >= 400 and isinstance(body, dict) and "detail" in body:
        body = {"error": str(body["detail"])}
    return status, body, kind


async def _send(send, status: int, body: bytes, kind: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
