"""A server whose artifact storage is full says so, and the client tells its user: it was a bare 500, retried six
times, then an httpx error with no message."""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelreg.errors import Unavailable
from modelreg.services.http.blob_routes import add_blob_routes
from modelreg.services.http.body_limits import LIMITS, BodyLimits
from modelreg.services.infra.blob_store import FolderBlobStore
from modelreg.transport import Transport


class FullDisk(FolderBlobStore):
    async def put_content(self, digest: str | None, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        async for _ in chunks:
            pass
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_an_upload_to_a_full_disk_is_refused_saying_the_storage_is_full(tmp_path: Path) -> None:
    app = web.Application()
    app[LIMITS] = BodyLimits(max_body_bytes=1024**2, max_blob_bytes=1024**3)
    add_blob_routes(app, FullDisk(tmp_path / "blobs"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 1000)
    digest = "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()

    async with TestServer(app) as server:
        transport = Transport(str(server.make_url("/")), "mr_unused")
        for upload in (
            lambda: transport.upload(weights, digest, lambda n: None),
            lambda: transport.upload_hashing(weights, lambda n: None),
        ):
            with pytest.raises(
                Unavailable, match="weights.bin was not uploaded: the server's artifact storage is full"
            ):
                await asyncio.to_thread(upload)
        transport.close()
