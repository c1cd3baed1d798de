"""Which blob store a process uses, chosen by a URL: a folder (the default) or S3-compatible object storage.

- a path, or file:///path: the content-addressed folder (FolderBlobStore), as on one machine;
- s3://bucket/prefix?endpoint=http://host:port&region=...: a bucket (ObjectBlobStore), for several API
  replicas; credentials from the usual environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from modelreg.errors import InvalidInput
from modelreg.services.infra.blob_store import FolderBlobStore
from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation


def blob_store_at(url: str | None, default_folder: Path) -> FolderBlobStore | ObjectBlobStore:
    if url is None or url == "":
        return FolderBlobStore(default_folder)
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        return ObjectBlobStore(ObjectStoreLocation.from_url(url))
    if scheme == "file":
        return FolderBlobStore(Path(urlsplit(url).path))
    if scheme == "":
        return FolderBlobStore(Path(url))
    raise InvalidInput(f"{url!r}: a blob store is a folder (a path or file:///path) or s3://bucket/prefix?endpoint=...")
