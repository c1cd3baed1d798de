"""HTTP routes of the blob store: HEAD to ask, PUT to upload (streamed, verified), GET to download;
POST /blobs to upload content whose digest the client computes as it sends (the store answers with the
digest it computed), and GET /blobs/heads/{size}/{head} to ask whether the store may already have a file
without reading the whole file first."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from collections.abc import Iterator

from aiohttp import web

from modelreg.errors import InvalidInput
from modelreg.events.names import count_in
from modelreg.services.http.blob_traffic import BLOB_BYTES, BlobTraffic
from modelreg.services.http.blob_visibility import SENDER, hidden_from_caller, listed_by_a_version
from modelreg.services.http.body_limits import read_bounded, received_bounded
from modelreg.services.infra.blob_store import FolderBlobStore

log = logging.getLogger(__name__)

BLOBS: web.AppKey[FolderBlobStore] = web.AppKey("blobs", FolderBlobStore)
CHUNK = 1024 * 1024


def _path_or_400(request: web.Request) -> tuple[FolderBlobStore, str]:
    store, digest = request.app[BLOBS], request.match_info["digest"]
    try:
        store.path(digest)
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    return store, digest


@contextlib.contextmanager
def _storage_not_full() -> Iterator[None]:
    """A full disk as the 507 a client can tell its user about: it was a bare 500, and an upload retried in vain."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.error("artifact files cannot be stored: %s", exc)
        raise web.HTTPInsufficientStorage(
            text="the server's artifact storage is full: nothing was stored; ask its operator to free or add space"
        ) from None


async def head_blob(request: web.Request) -> web.Response:
    store, digest = _path_or_400(request)
    if not store.has(digest):
        raise web.HTTPNotFound(text=f"no blob {digest}")
    return web.Response(headers={"Content-Length": str(store.path(digest).stat().st_size)})


async def put_blob(request: web.Request) -> web.Response:
    """Bytes sent are verified and their sender recorded as a holder (services/infra/blob_holders.py), also
    when the store has them already: that is how a caller proves it holds a file a private team's versions
    list, which it is then answered as a first upload would be."""
    store, digest = _path_or_400(request)
    hidden = await hidden_from_caller(request, digest)  # asked before this upload makes the caller a holder
    try:
        if store.has(digest):
            size = await store.verify(digest, received_bounded(request))
            stored = False
        else:
            with _storage_not_full():
                size = await store.put(digest, received_bounded(request))
            stored = True
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    await store.record_holder(digest, request[SENDER])
    request.app[BLOB_BYTES].received(size)
    if stored or hidden:
        return web.json_response({"digest": digest, "size": size, "stored": True}, status=201)
    return web.json_response({"digest": digest, "stored": False})


async def post_blob(request: web.Request) -> web.Response:
    """Upload without announcing the digest: the store computes it, and the client compares it with its own."""
    store = request.app[BLOBS]
    with _storage_not_full():
        digest, size = await store.put_content(None, received_bounded(request))
    await store.record_holder(digest, request[SENDER])
    request.app[BLOB_BYTES].received(size)
    return web.json_response({"digest": digest, "size": size, "stored": True}, status=201)


async def blob_candidates(request: web.Request) -> web.Response:
    """Digests of stored blobs with this size whose first MiB has this sha256 (usually none, or the one)."""
    if (size := count_in(request.match_info["size"], digits=18)) is None:  # 18 digits fit PostgreSQL's bigint
        raise web.HTTPBadRequest(text=f"{request.match_info['size']!r} is not a size: give the file's size in bytes")
    try:
        digests = request.app[BLOBS].candidates(size, request.match_info["head"])
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    return web.json_response({"digests": [d for d in digests if not await hidden_from_caller(request, d)]})


async def get_blob(request: web.Request) -> web.StreamResponse:
    store, digest = _path_or_400(request)
    if not store.has(digest):
        raise await blob_not_found(request, digest, "this API's blob folder", logged_as=f"the blob folder {store.root}")
    path = store.path(digest)
    request.app[BLOB_BYTES].sent(path.stat().st_size)
    return web.FileResponse(path, chunk_size=CHUNK)


async def blob_not_found(request: web.Request, digest: str, store: str, logged_as: str) -> web.HTTPNotFound:
    """The answer to a download the store cannot serve. It blames the store only when a version lists the blob:
    it was stored once, so the store is not the one it was stored through (or lost it). `logged_as` names the
    store in the operator's log, where a folder's path may be said; `store` names it to the caller."""
    if await listed_by_a_version(request, digest):
        said_once(f"blob {digest}, listed by a version, is not in {logged_as}")
        return web.HTTPNotFound(text=missing_from_store(digest, store))
    return web.HTTPNotFound(text=f"no blob {digest}: no version lists it, and it was not uploaded")


_SAID: set[str] = set()


def said_once(warning: str) -> None:
    """A warning logged once per file and process: any key holder could ask for the file in a loop."""
    if warning not in _SAID and len(_SAID) < 10_000:
        _SAID.add(warning)
        log.warning("%s: every API process must use the same blob store", warning)


def missing_from_store(digest: str, store: str) -> str:
    return (
        f"no blob {digest} in {store}, though an artifact version lists it: it was stored through another blob store "
        "(every API process must use the same one: one shared folder or one bucket, MODELREG_BLOB_STORE, "
        "docs/scaling.md), or the store was moved, emptied or restored without it (docs/operations.md)"
    )


async def plan_upload(request: web.Request) -> web.Response:
    """The same question a client asks an object-storage server; here the answer is: send it to the API."""
    try:
        fields = json.loads(await read_bounded(request))
        digest = fields["digest"]
        request.app[BLOBS].path(digest)
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text="send a JSON object: {digest, size}") from None
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    stored = request.app[BLOBS].has(digest) and not await hidden_from_caller(request, digest)
    return web.json_response({"method": "stored" if stored else "api"})


def add_blob_routes(app: web.Application, store: FolderBlobStore) -> None:
    app[BLOBS] = store
    app[BLOB_BYTES] = BlobTraffic()
    app.router.add_post("/blobs/uploads", plan_upload)
    app.router.add_route("HEAD", "/blobs/{digest}", head_blob)
    app.router.add_put("/blobs/{digest}", put_blob)
    app.router.add_post("/blobs", post_blob)
    app.router.add_get("/blobs/heads/{size}/{head}", blob_candidates)
    app.router.add_get("/blobs/{digest}", get_blob, allow_head=False)
