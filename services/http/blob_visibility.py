"""Whether the caller of a /blobs request may learn that the store holds a file.

A stored file that no version the caller may read lists is, to that caller, not there, unless the caller sent
its bytes: HEAD says 404, an upload plan asks for the bytes, the first-MiB candidates leave it out. Otherwise
"do you have sha256:...?" would tell anyone with a key whether a private team stored some exact bytes (a known
model's weights, a dataset). That holds for a file no version lists yet too: a private team's upload whose
version is not logged yet (the rest of a big artifact still uploading, a run that crashed) was found by its
size and first MiB, listed in an outsider's own version, and read from there.

A file that only deleted versions list is, to everyone, a file of versions they may not read (a deleted version is
read by no one): no one downloads it, and whoever did not send its bytes no longer finds it.

Listing a file in a version needs its bytes only when versions hidden from the caller list it
(require_stored_files, services/commands/handlers.py): a file uploaded straight to object storage in one PUT
has no record of its sender, who must be able to log the version listing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from modelreg.errors import InvalidInput
from modelreg.projections.readable import Readable, Visibility
from modelreg.services.commands.decisions import StoredBlobs

# Set by the key-checking middleware (services/http/api.py) on every /blobs request: digest -> hidden?
HIDDEN_FROM_CALLER: web.RequestKey[Callable[[str], Awaitable[bool]]] = web.RequestKey("hidden_from_caller")
# And: digest -> listed only by versions hidden from the caller (an upload's completion is refused then)?
LISTED_OUT_OF_SIGHT: web.RequestKey[Callable[[str], Awaitable[bool]]] = web.RequestKey("listed_out_of_sight")
# And: digest -> listed by a live version (whoever may read it): a file missing from the store then is a fault.
LISTED_BY_A_VERSION: web.RequestKey[Callable[[str], Awaitable[bool]]] = web.RequestKey("listed_by_a_version")
# Also set there: the principal sending bytes, recorded as their holder (services/infra/blob_holders.py).
SENDER: web.RequestKey[str] = web.RequestKey("sender", str)


async def hidden_from_caller(request: web.Request, digest: str) -> bool:
    hidden = request.get(HIDDEN_FROM_CALLER)
    return hidden is not None and await hidden(digest)


async def listed_by_a_version(request: web.Request, digest: str) -> bool:
    listed = request.get(LISTED_BY_A_VERSION)
    return listed is not None and await listed(digest)


async def listed_out_of_sight(request: web.Request, digest: str) -> bool:
    listed = request.get(LISTED_OUT_OF_SIGHT)
    return listed is not None and await listed(digest)


def hidden_from(
    visibility: Visibility, readable: Readable, blobs: StoredBlobs, holder: str
) -> Callable[[str], Awaitable[bool]]:
    """digest -> whether it is hidden from the caller whose visibility set is `readable` and who sends bytes as
    `holder`."""

    async def hidden(digest: str) -> bool:
        if await visibility.blob_readable(digest, readable):
            return False
        try:
            if await blobs.held_by([digest], holder):
                return False  # it sent these bytes: nothing to learn
            return digest in await blobs.sizes([digest])  # a file not stored is not hidden, only missing
        except InvalidInput:
            return False  # not a digest at all, which the route refuses as such

    return hidden
