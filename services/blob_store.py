"""The content-addressed store for artifact files: a folder by default, one file per SHA-256.

A file is written under a temporary name while its digest is computed, and renamed into place only if
the digest is the one announced: a blob at its address is always complete and correct, so uploading
the same content twice, or concurrently, is harmless.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from modelreg.errors import InvalidInput

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class DigestMismatch(InvalidInput):
    pass


class FolderBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        match = DIGEST.match(digest)
        if match is None:
            raise InvalidInput(f"{digest!r} is not a blob address: use sha256:<64 lowercase hex>")
        hexdigest = match.group(1)
        return self.root / "sha256" / hexdigest[:2] / hexdigest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    async def put(self, digest: str, chunks: AsyncIterator[bytes]) -> int:
        """Store what `chunks` yield under `digest`; returns its size. Refuses content of another digest."""
        target = self.path(digest)
        temporary = self.root / "tmp" / uuid.uuid4().hex
        hasher, size = hashlib.sha256(), 0
        try:
            with temporary.open("wb") as out:
                async for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise DigestMismatch(f"the content's digest is {actual}, not {digest}: the upload was corrupted or mislabelled")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
            return size
        finally:
            temporary.unlink(missing_ok=True)
