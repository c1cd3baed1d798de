"""Bytes of artifact files in and out, counted where they are decided: received by the folder store, or
handed to object storage (a verified upload, a presigned download) when the bytes bypass the API."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass
class BlobTraffic:
    bytes_in: int = 0
    bytes_out: int = 0

    def received(self, n: int) -> None:
        self.bytes_in += n

    def sent(self, n: int) -> None:
        self.bytes_out += n


BLOB_BYTES: web.AppKey[BlobTraffic] = web.AppKey("blob_traffic", BlobTraffic)
