"""Request bodies are bounded before they are read, on every route, in size and in time.

A body that announces its size (Content-Length) over the limit is refused with 413 before a byte of it is
read; one sent in chunks is counted as it arrives (`read_bounded`, the blob upload routes). Artifact files
have their own, much larger, limit. A body must also arrive within `read_timeout_s` of its first read, plus a
second for every SLOWEST_BYTES_PER_S that came (an 8 MiB manifest over a slow link is taken; an artifact file:
each piece within `read_timeout_s` of the one before), or it is refused with 408: a caller dripping a byte a
second held a connection and a handler for ever. /graphql answers its refusals as GraphQL errors (code
INVALID_INPUT), so that a client shows the message; other routes answer plain text.
"""

from __future__ import annotations

import asyncio
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
    # A whole body (an artifact file: each piece of it) arrives within this many seconds, or is refused (408).
    read_timeout_s: float = 30.0

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
# Past `read_timeout_s`, a body still arriving at this rate on average goes on: a dripping caller has to send as
# much, which is bandwidth, not a slow trickle, and a link this slow takes a whole 8 MiB body in about three minutes.
SLOWEST_BYTES_PER_S = 64 * 1024


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


def too_slow(request: web.Request, size: int) -> str:
    """Why a body that stopped arriving in time is refused, and what to do."""
    timeout = request.app[LIMITS].read_timeout_s
    within = (
        f"each piece of an uploaded file must arrive within {timeout:g} s of the one before"
        if uploads_a_file(request)
        else f"a request body must arrive within {timeout:g} s, plus 1 s for every {readable(SLOWEST_BYTES_PER_S)}"
    )
    return (
        f"the request body stopped arriving in time ({readable(size)} came): {within}; send it again over a faster "
        "connection, or ask the operator to raise the limit (modelreg server/api --body-read-timeout, "
        "MODELREG_BODY_READ_TIMEOUT)"
    )


def refusal(
    request: web.Request,
    status: int,
    message: str,
    *,
    code: str = "INVALID_INPUT",
    retriable: bool = False,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A refused request's answer: a GraphQL error on /graphql, plain text elsewhere."""
    if request.path == "/graphql":
        error = {"message": message, "extensions": {"code": code, "retriable": retriable}}
        body: dict[str, Any] = {"errors": [error]}
        return web.Response(text=json.dumps(body), status=status, content_type="application/json", headers=headers)
    return web.Response(text=message, status=status, headers=headers)


class BodyRefused(Exception):
    """A body refused while it was read; `status` is the answer's (413 too large, 408 too slow)."""

    status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BodyTooLarge(BodyRefused):
    status = 413


class BodyTooSlow(BodyRefused):
    status = 408


async def read_bounded(request: web.Request) -> bytes:
    """The whole body, refused (BodyTooLarge) as soon as it passes the route's limit."""
    received = [data async for data in received_bounded(request)]
    return b"".join(received)


async def received_bounded(request: web.Request) -> AsyncIterator[bytes]:
    """The body in the pieces the socket delivered, refused as soon as it passes the route's limit (BodyTooLarge)
    or its deadline (BodyTooSlow)."""
    limits = request.app[LIMITS]
    limit, size, each_piece = limits.of(request), 0, uploads_a_file(request)
    loop = asyncio.get_running_loop()
    # An artifact file of gigabytes takes as long as the link needs; it must not stall, though.
    started = loop.time()
    while True:
        if each_piece:
            deadline = loop.time() + limits.read_timeout_s
        else:
            deadline = started + limits.read_timeout_s + size / SLOWEST_BYTES_PER_S
        try:
            async with asyncio.timeout_at(deadline):
                data, end_of_chunk = await request.content.readchunk()
        except TimeoutError:
            raise BodyTooSlow(too_slow(request, size)) from None
        if not data and not end_of_chunk:
            return  # the end of the body
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
    except BodyRefused as exc:
        # The rest of the body is never read: the connection is closed after the answer (no lingering).
        return refusal(request, exc.status, exc.message)
