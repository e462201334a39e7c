"""What a ``POST /predict`` of ``scenes serve`` may carry, checked before any photo is decoded:
multipart ``file`` (one photo) or repeated ``files`` (several), or JSON ``{"image": base64}``;
``?top_k=``. Every mistake is a ``ClientError`` whose message names what was wrong; nothing
here reads a path a client names (an upload's filename is only echoed back)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import UploadFile
from starlette.requests import Request

from .pixels import MAX_PIXELS, pixel_count

HOW = 'send a photo as multipart field "file", several as repeated "files", or JSON {"image": "<base64>"}'
MAX_FILES = 64


class ClientError(Exception):
    """A request's mistake: its status (4xx) and what to tell the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Photos:
    names: list[str]
    data: list[bytes]
    top_k: int
    several: bool  # sent as ``files``: answered as a list, one entry per photo


def top_k_of(query: bytes, classes: int) -> int:
    values = parse_qs(query.decode("latin-1")).get("top_k", ["3"])
    try:
        k = int(values[-1])
    except ValueError:
        k = 0
    if k < 1:
        raise ClientError(400, f"top_k must be a whole number from 1 (got {values[-1]!r})")
    return min(k, classes)


async def parse_photos(scope: dict, body: bytes, classes: int) -> Photos:
    """The photos and top-k of a ``/predict`` request whose ``body`` was read in full."""
    top_k = top_k_of(scope.get("query_string", b""), classes)
    if not body:
        raise ClientError(400, f"the request body is empty; {HOW}")
    kind = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1").lower()
    if kind.startswith("multipart/form-data"):
        names, data, several = await _from_form(scope, body)
    elif kind.startswith("application/json"):
        names, data, several = ["image"], [_from_json(body)], False
    else:
        raise ClientError(415, f"unsupported content type {kind or '(none)'!r}; {HOW}")
    for name, item in zip(names, data):
        _check_photo(name, item)
    return Photos(names, data, top_k, several)


async def _from_form(scope: dict, body: bytes) -> tuple[list[str], list[bytes], bool]:
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, replay).form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except Exception as exc:  # malformed multipart, too many parts: starlette says which
        raise ClientError(400, f"unreadable multipart body ({exc}); {HOW}") from None
    fields = set(form.keys())
    if fields - {"file", "files"}:
        wrong = ", ".join(sorted(fields - {"file", "files"}))
        raise ClientError(400, f"unknown field {wrong}; {HOW}")
    if fields == {"file", "files"} or (fields == {"file"} and len(form.getlist("file")) > 1):
        raise ClientError(400, f'one photo goes in "file", several in repeated "files"; {HOW}')
    if not fields:
        raise ClientError(400, f"no photo in the form; {HOW}")
    field = fields.pop()
    items = form.getlist(field)
    names, data = [], []
    for item in items:
        if not isinstance(item, UploadFile):
            raise ClientError(400, f'field "{field}" holds text, not a file; {HOW}')
        names.append(item.filename or field)
        data.append(await item.read())
    return names, data, field == "files"


def _from_json(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        raise ClientError(400, f"the body is not valid JSON; {HOW}") from None
    if not isinstance(document, dict) or set(document) != {"image"}:
        keys = ", ".join(sorted(document)) if isinstance(document, dict) else type(document)
        raise ClientError(400, f'JSON must be {{"image": "<base64>"}} (got {keys}); {HOW}')
    if not isinstance(document["image"], str):
        raise ClientError(400, '"image" must be a base64 string')
    try:
        return base64.b64decode(document["image"], validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, '"image" is not valid base64') from None


def _check_photo(name: str, data: bytes) -> None:
    if not data:
        raise ClientError(400, f"{name} is empty (0 bytes); {HOW}")
    pixels = pixel_count(io.BytesIO(data))
    if pixels is not None and pixels > MAX_PIXELS:
        raise ClientError(
            413, f"{name} is too large to decode safely ({pixels:,} pixels; at most {MAX_PIXELS:,})"
        )
