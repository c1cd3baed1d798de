"""Whether the caller of a /blobs request may learn that the store holds a file.

A file held only by versions the caller may not read is, to that caller, not there: HEAD says 404, an upload
plan asks for the bytes, the candidates list leaves it out. Otherwise "do you have sha256:...?" would tell
anyone with a key whether a private team stored some exact bytes (a known model's weights, a dataset)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

# Set by the key-checking middleware (services/http/api.py) on every /blobs request: digest -> hidden?
HIDDEN_FROM_CALLER: web.RequestKey[Callable[[str], Awaitable[bool]]] = web.RequestKey("hidden_from_caller")
# Also set there: the principal sending bytes, recorded as their holder (services/infra/blob_holders.py).
SENDER: web.RequestKey[str] = web.RequestKey("sender", str)


async def hidden_from_caller(request: web.Request, digest: str) -> bool:
    hidden = request.get(HIDDEN_FROM_CALLER)
    return hidden is not None and await hidden(digest)
