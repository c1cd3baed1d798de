"""HTTP routes of the blob store when the files are in object storage: the API hands out presigned URLs and
checks what landed, and the bytes go between the client and the store.

- HEAD /blobs/{digest}: is it stored (and vouched for by its SHA-256)?
- GET /blobs/{digest}: 307 to a presigned GET (a client following redirects downloads as from the folder store).
- POST /blobs/uploads {digest, size[, part_size, parts, upload]}: what to do to store it (see ObjectBlobStore).
- POST /blobs/uploads/complete {digest, size, upload}: join a multipart upload's parts and verify the digest;
  or check the bytes a caller sent to prove it holds a file it may not be told is stored (its plan named an
  `upload` for a single PUT too).
- PUT /blobs/{digest}, POST /blobs: refused with 409, saying how (the bytes are not carried through the API).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from modelreg.errors import InvalidInput, Unavailable
from modelreg.services.http.blob_routes import blob_not_found
from modelreg.services.http.blob_traffic import BLOB_BYTES, BlobTraffic
from modelreg.services.http.blob_visibility import (
    SENDER,
    hidden_from_caller,
    listed_out_of_sight,
)
from modelreg.services.http.body_limits import read_bounded
from modelreg.services.infra.blob_store import DIGEST
from modelreg.services.infra.object_store import PROOF, UPLOAD_GONE, ObjectBlobStore

log = logging.getLogger(__name__)
OBJECTS: web.AppKey[ObjectBlobStore] = web.AppKey("objects", ObjectBlobStore)
MAX_PLAN_BODY = 2 * 1024 * 1024  # 10,000 part digests and change
_MAX_BLOB: web.AppKey[int] = web.AppKey("max_blob_bytes", int)


async def _fields(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_PLAN_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_PLAN_BODY, actual_size=request.content_length)
    body = await read_bounded(request)  # within the route's body limit, however it is sent
    if len(body) > MAX_PLAN_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_PLAN_BODY, actual_size=len(body))
    try:
        fields = json.loads(body)
    except ValueError:
        raise web.HTTPBadRequest(text="send a JSON object: {digest, size[, part_size, parts, upload]}") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("digest"), str) or not DIGEST.match(fields["digest"]):
        raise web.HTTPBadRequest(text="'digest' (sha256:<64 lowercase hex>) is required")
    if not isinstance(fields.get("size"), int) or isinstance(fields.get("size"), bool) or fields["size"] < 0:
        raise web.HTTPBadRequest(text="'size' (the file's size in bytes, >= 0) is required")
    if fields["size"] > request.app[_MAX_BLOB]:
        raise web.HTTPRequestEntityTooLarge(max_size=request.app[_MAX_BLOB], actual_size=fields["size"])
    for name, kind in (("part_size", int), ("parts", list), ("upload", str)):
        if fields.get(name) is not None and not isinstance(fields[name], kind):
            raise web.HTTPBadRequest(text=f"'{name}' must be a {kind.__name__}")
    if fields.get("parts") is not None and not all(isinstance(p, str) for p in fields["parts"]):
        raise web.HTTPBadRequest(text="'parts' lists each part's sha256 as 64 lowercase hex")
    return fields


async def plan_upload(request: web.Request) -> web.Response:
    fields = await _fields(request)
    try:
        plan = await request.app[OBJECTS].plan_upload(
            fields["digest"],
            fields["size"],
            fields.get("part_size"),
            fields.get("parts"),
            fields.get("upload"),
            # Bytes only a private team's versions hold are sent again, as a proof of holding them.
            proof=await hidden_from_caller(request, fields["digest"]),
        )
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    return web.json_response(plan)


async def complete_upload(request: web.Request) -> web.Response:
    fields = await _fields(request)
    if not fields.get("upload"):
        raise web.HTTPBadRequest(text="'upload' (from POST /blobs/uploads) is required")
    # Listed only by versions hidden from the caller (not a file no version lists: a second uploader of a new
    # file completes after the first, and its parts are verified below).
    if not fields["upload"].startswith(PROOF) and await listed_out_of_sight(request, fields["digest"]):
        # Told about the store's copy ("it holds N bytes"), the caller would learn what it may not know.
        raise web.HTTPBadRequest(text=UPLOAD_GONE)
    store = request.app[OBJECTS]
    try:
        size, verified = await store.complete_upload(
            fields["digest"], fields["size"], fields["upload"], fields.get("parts")
        )
    except InvalidInput as exc:
        if fields["upload"].startswith(PROOF) and await store.held_by([fields["digest"]], request[SENDER]):
            # Asked again after an answer was lost: the proof was checked and its bytes deleted.
            return web.json_response({"digest": fields["digest"], "size": fields["size"], "stored": True}, status=201)
        raise web.HTTPBadRequest(text=exc.message) from None
    except Unavailable as exc:
        raise web.HTTPServiceUnavailable(text=exc.message, headers={"Retry-After": "5"}) from None
    if verified:  # the caller's own bytes, hashed here: it holds the file (services/infra/blob_holders.py)
        await store.record_holder(fields["digest"], request[SENDER])
    request.app[BLOB_BYTES].received(size)
    return web.json_response({"digest": fields["digest"], "size": size, "stored": True}, status=201)


async def head_blob(request: web.Request) -> web.Response:
    try:
        size = await request.app[OBJECTS].size(request.match_info["digest"])
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    if size is None:
        raise web.HTTPNotFound(text=f"no blob {request.match_info['digest']}")
    return web.Response(headers={"Content-Length": str(size)})


async def get_blob(request: web.Request) -> web.Response:
    digest = request.match_info["digest"]
    store = request.app[OBJECTS]
    try:
        size = await store.size(digest)
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    if size is None:
        raise await blob_not_found(request, digest, "the bucket", logged_as="the bucket")
    request.app[BLOB_BYTES].sent(size)
    raise web.HTTPTemporaryRedirect(await store.download_url(digest))


async def through_the_api_refused(request: web.Request) -> web.Response:
    raise web.HTTPConflict(
        text="this server keeps artifact files in object storage: ask POST /blobs/uploads for presigned URLs "
        "(the modelreg client does so) instead of sending the bytes to the API"
    )


def add_object_store_routes(app: web.Application, store: ObjectBlobStore, max_blob_bytes: int) -> None:
    app[OBJECTS] = store
    app[BLOB_BYTES] = BlobTraffic()
    app[_MAX_BLOB] = max_blob_bytes
    app.router.add_post("/blobs/uploads", plan_upload)
    app.router.add_post("/blobs/uploads/complete", complete_upload)
    app.router.add_route("HEAD", "/blobs/{digest}", head_blob)
    app.router.add_get("/blobs/{digest}", get_blob, allow_head=False)
    app.router.add_put("/blobs/{digest}", through_the_api_refused)
    app.router.add_post("/blobs", through_the_api_refused)


def opened(store: ObjectBlobStore) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: the store's client is open while the app runs."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with store:
            try:
                await store.create_bucket()  # compose, a first start; a deployment's bucket usually exists
            except Exception as exc:  # noqa: BLE001 -- no right to create buckets: the uploads will say so
                log.warning("could not make sure bucket %s exists: %s", store.location.bucket, exc)
            yield

    return context
