"""Request bodies are bounded before they are read, on every route.

A body that announces its size (Content-Length) over the limit is refused with 413 before a byte of it is
read; one sent in chunks is counted as it arrives (`read_bounded`, the blob upload routes). Artifact files
have their own, much larger, limit. /graphql answers its refusals as GraphQL errors (code INVALID_INPUT),
so that a client shows the message; other routes answer plain text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

UNITS = {
    **{"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4},
    **{"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4},
}


@dataclass(frozen=True)
class BodyLimits:
    max_body_bytes: int
    max_blob_bytes: int

    def of(self, request: web.Request) -> int:
        return self.max_blob_bytes if uploads_a_file(request) else self.max_body_bytes


def uploads_a_file(request: web.Request) -> bool:
    # /blobs/uploads asks how to upload (a JSON body); the file itself goes elsewhere or to PUT/POST /blobs.
    return (
        request.path.startswith("/blobs")
        and request.method in ("PUT", "POST")
        and not request.path.startswith("/blobs/uploads")
    )


LIMITS: web.AppKey[BodyLimits] = web.AppKey("body_limits", BodyLimits)


def readable(size: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:,.1f} {unit}".replace(".0 ", " ")
    return f"{size:,} bytes"


def parse_size(text: str) -> int:
    """`8MiB`, `50 GiB`, `1000000`: a size in bytes (binary and decimal units, case-insensitive)."""
    cleaned = text.strip().lower().replace(" ", "").replace("_", "")
    digits = cleaned.rstrip("kmgtib")
    unit = cleaned[len(digits) :] or "b"
    if not digits or unit not in UNITS:
        raise ValueError(f"{text!r} is not a size: write bytes (1048576) or a number with a unit (8MiB, 50GiB, 10MB)")
    return int(float(digits) * UNITS[unit])


def too_large(request: web.Request, size: int | None) -> str:
    """Why the body is refused, and what to do: `size` as announced (None: sent in chunks, counted)."""
    limit = request.app[LIMITS].of(request)
    sent = f"is {readable(size)}" if size is not None else "goes on"
    if uploads_a_file(request):
        return (
            f"the uploaded file {sent}, over this server's limit of {readable(limit)} for one artifact file: split it, "
            "log it as a reference (Artifact.add_reference) instead, or ask the operator to raise the limit "
            "(modelreg server/api --max-blob-bytes, MODELREG_MAX_BLOB_BYTES)"
        )
    return (
        f"the request body {sent}, over this server's limit of {readable(limit)}: send less in one request, or ask "
        "the operator to raise the limit (modelreg server/api --max-body-bytes, MODELREG_MAX_BODY_BYTES)"
    )


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """A refused request's answer: a GraphQL error on /graphql, plain text elsewhere."""
    if request.path == "/graphql":
        error = {"message": message, "extensions": {"code": "INVALID_INPUT", "retriable": False}}
        body: dict[str, Any] = {"errors": [error]}
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")
    return web.Response(text=message, status=status)


class BodyTooLarge(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def read_bounded(request: web.Request) -> bytes:
    """The whole body, refused (BodyTooLarge) as soon as it passes the route's limit."""
    received = [data async for data in received_bounded(request)]
    return b"".join(received)


async def received_bounded(request: web.Request) -> AsyncIterator[bytes]:
    """The body in the pieces the socket delivered, refused (BodyTooLarge) as soon as it passes the route's limit."""
    limit, size = request.app[LIMITS].of(request), 0
    async for data, _ in request.content.iter_chunks():
        size += len(data)
        if size > limit:
            raise BodyTooLarge(too_large(request, request.content_length))
        if data:
            yield data


@web.middleware
async def bodies_within_limits(request: web.Request, handler: Any) -> web.StreamResponse:
    limit = request.app[LIMITS].of(request)
    if request.content_length is not None and request.content_length > limit:
        return refusal(request, 413, too_large(request, request.content_length))
    try:
        return await handler(request)
    except BodyTooLarge as exc:
        return refusal(request, 413, exc.message)
