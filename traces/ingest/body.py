"""Request bodies of every ingest endpoint: read (with Content-Length or chunked), decompressed and, for JSON,
parsed, each step capped so that no body is ever dropped silently or read without bound."""

from __future__ import annotations

import json
import zlib
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from traces.ingest.limits import IngestError, IngestLimits, too_deep

READ_CHUNK = 64 * 1024


def request_body(request: HttpRequest, limits: IngestLimits) -> bytes:
    """The body after Content-Encoding, at most the body cap (413 past it, counted after decompression)."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raw = _chunked_body(request, limits)
    else:
        try:
            raw = request.body
        except RequestDataTooBig as exc:
            raise IngestError(413, limits.body_too_large_message()) from exc
    return decompress(raw, request.headers.get("Content-Encoding", ""), limits)


def _chunked_body(request: HttpRequest, limits: IngestLimits) -> bytes:
    """A body without Content-Length. Django reads none (it would see an empty body), so the WSGI input is read
    here, up to the cap; only a server that decodes the chunks itself (gunicorn) can give it."""
    if not request.META.get("wsgi.input_terminated"):
        raise IngestError(
            411,
            "This server cannot read chunked request bodies (Transfer-Encoding: chunked): send Content-Length, "
            "or run sre4ai under gunicorn as scripts/run.sh does.",
        )
    stream = request.META["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(min(READ_CHUNK, limits.max_body_bytes + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise IngestError(413, limits.body_too_large_message())
    return b"".join(parts)


def decompress(body: bytes, content_encoding: str, limits: IngestLimits) -> bytes:
    """Undo Content-Encoding, refusing to inflate past the body cap (a gzip bomb stops at the cap)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limits.max_body_bytes:
            raise IngestError(413, limits.body_too_large_message())
        return body
    if encoding not in ("gzip", "deflate"):
        raise IngestError(415, f"Unsupported Content-Encoding {content_encoding!r}: use gzip or none.")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limits.max_body_bytes + 1)
    except zlib.error as exc:
        raise IngestError(400, f"Body is not valid {encoding}: {exc}.") from exc
    if len(out) > limits.max_body_bytes or inflater.unconsumed_tail:
        raise IngestError(413, limits.body_too_large_message())
    if not inflater.eof:
        raise IngestError(400, f"Body is truncated {encoding} data.")
    return out


def json_document(body: bytes, limits: IngestLimits) -> Any:
    """Parse a JSON body whose nesting stays within what the formats need (400 naming where it goes deeper)."""
    try:
        document = json.loads(body)
    except RecursionError as exc:
        raise IngestError(400, f"Body nests JSON deeper than {limits.max_body_depth} levels.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise IngestError(400, f"Body is not valid JSON: {exc}.") from exc
    where = too_deep(document, limits.max_body_depth)
    if where is not None:
        raise IngestError(
            400,
            f"Body nests JSON deeper than {limits.max_body_depth} levels at {where}: values may nest "
            f"{limits.json_depth_text()}.",
        )
    return document
