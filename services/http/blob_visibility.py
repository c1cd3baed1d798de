"""Whether the caller of a /blobs request may learn that the store holds a file.

A stored file that no version the caller may read lists is, to that caller, not there, unless the caller sent
its bytes: HEAD says 404, an upload plan asks for the bytes, the candidates list leaves it out. Otherwise "do you
have sha256:...?" would tell anyone with a key whether a private team stored some exact bytes (a known model's
weights, a dataset). That holds for a file no version lists yet too: a private team's upload whose version is not
logged yet (the rest of a big artifact still uploading, a run that crashed) was found by its size and first MiB,
then listed in an outsider's own version, and read from there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from modelreg.errors import InvalidInput
from modelreg.projections.readable import Readable, Visibility
from modelreg.services.commands.decisions import StoredBlobs

# Set by the key-checking middleware (services/http/api.py) on every /blobs request: digest -> hidden?
HIDDEN_FROM_CALLER: web.RequestKey[Callable[[str], Awaitable[bool]]] = web.RequestKey("hidden_from_caller")
# Also set there: the principal sending bytes, recorded as their holder (services/infra/blob_holders.py).
SENDER: web.RequestKey[str] = web.RequestKey("sender", str)


async def hidden_from_caller(request: web.Request, digest: str) -> bool:
    hidden = request.get(HIDDEN_FROM_CALLER)
    return hidden is not None and await hidden(digest)


def hidden_from(
    visibility: Visibility, readable: Readable, blobs: StoredBlobs, holder: str
) -> Callable[[str], Awaitable[bool]]:
    """digest -> whether it is hidden from the caller whose visibility set is `readable` and who sends bytes as
    `holder`."""

    async def hidden(digest: str) -> bool:
        if readable.hides_nothing or not await visibility.blob_hidden(digest, readable):
            return False
        try:
            if await blobs.held_by([digest], holder):
                return False  # it sent these bytes: nothing to learn
            return digest in await blobs.sizes([digest])  # a file not stored is not hidden, only missing
        except InvalidInput:
            return False  # not a digest at all, which the route refuses as such

    return hidden
