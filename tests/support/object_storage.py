"""The test bucket on the local S3 server, made once (SeaweedFS answers before its volume server has joined,
so the first write is retried briefly)."""

from __future__ import annotations

import asyncio

from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation

_made: set[str] = set()


async def bucket_made(endpoint: str, bucket: str) -> None:
    if (endpoint, bucket) in _made:
        return
    async with ObjectBlobStore(ObjectStoreLocation.from_url(f"s3://{bucket}?endpoint={endpoint}")) as store:
        for attempt in range(60):
            try:
                await store.create_bucket()
                await store._s3.put_object(Bucket=bucket, Key="ready", Body=b"ok")
                break
            except Exception:
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
    _made.add((endpoint, bucket))
