"""The content-addressed store for artifact files: a folder by default, one file per SHA-256.

A file is written under a temporary name while its digest is computed, and renamed into place only if
the digest is the one announced (or, for an upload that announces none, under the digest computed): a
blob at its address is always complete and correct, so uploading the same content twice, or
concurrently, is harmless.

Receiving, hashing and writing overlap: while the event loop receives the next 8 MiB, one worker thread
hashes the previous 8 MiB and another writes them (hashlib and file writes release the GIL). The pieces are never
joined, so no byte is copied between the socket and the file.

Each blob is also indexed by its size and the SHA-256 of its first MiB ("head"): a client holding a big
file that the store lacks can find out from a few bytes, and send it in one pass (hashing as it sends)
instead of reading it once to hash it and once more to send it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from modelreg.errors import InvalidInput
from modelreg.services.infra.blob_holders import holder_mark

# \Z, not $: Python's $ also matches before a trailing newline, and "sha256:<hex>\n" is not a digest (it
# passed for one where privacy checks look digests up verbatim, and the store stripped it).
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})\Z")
HEX = re.compile(r"^[0-9a-f]{64}\Z")
HEAD_BYTES = 1024 * 1024
PIECE = (
    8 * 1024 * 1024
)  # what one hop to the worker threads hashes and writes: pieces as received, gathered (not joined)


class DigestMismatch(InvalidInput):
    pass


def mismatch(actual: str, announced: str) -> str:
    """The one answer to bytes of another digest, whether the store holds `announced` or not (a different one
    would tell a caller that a file it may not know of is stored)."""
    return f"the content's digest is {actual}, not {announced}: the upload was corrupted or mislabelled"


async def _batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The chunks as they arrive, grouped into batches of at least PIECE bytes (the last may be smaller):
    never joined, so no byte is copied on the way to the hash and the file."""
    batch: list[bytes] = []
    size = 0
    async for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= PIECE:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


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

    async def sizes(self, digests: Collection[str]) -> dict[str, int]:
        """The size of each of `digests` held here, looked up in one worker thread (a manifest may list
        tens of thousands of files)."""
        return await asyncio.to_thread(self._sizes, list(digests))

    def _sizes(self, digests: list[str]) -> dict[str, int]:
        found = {}
        for digest in digests:
            try:
                found[digest] = self.path(digest).stat().st_size
            except (FileNotFoundError, InvalidInput):
                pass
        return found

    def _holders(self, digest: str) -> Path:
        blob = self.path(digest)  # refuses what is not a digest
        return self.root / "held" / blob.parent.name / blob.name

    async def record_holder(self, digest: str, holder: str) -> None:
        """`holder` sent this file's bytes, verified (services/infra/blob_holders.py)."""
        marker = self._holders(digest) / holder_mark(holder)
        await asyncio.to_thread(_touch, marker)

    async def held_by(self, digests: Collection[str], holder: str) -> set[str]:
        mark = holder_mark(holder)
        return {d for d in digests if (self._holders(d) / mark).exists()}

    async def verify(self, digest: str, chunks: AsyncIterator[bytes]) -> int:
        """Hash what `chunks` yield without keeping it; returns its size, or DigestMismatch. For bytes the
        store already holds, sent as proof of possession: the stored copy is not touched."""
        self.path(digest)
        hasher, size = hashlib.sha256(), 0
        async for batch in _batches(chunks):
            size += sum(len(piece) for piece in batch)
            await asyncio.to_thread(_hash_all, hasher, batch)
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(mismatch("sha256:" + hasher.hexdigest(), digest))
        return size

    def _head_index(self, size: int, head: str) -> Path:
        if size < 0 or HEX.match(head) is None:
            raise InvalidInput(
                f"a blob head is a size >= 0 and the sha256 (64 lowercase hex) of its first {HEAD_BYTES} bytes"
            )
        return self.root / "heads" / head[:2] / f"{head[2:]}-{size}"

    def candidates(self, size: int, head: str) -> list[str]:
        """Digests of the stored blobs of this size whose first MiB has this SHA-256."""
        index = self._head_index(size, head)
        try:
            digests = index.read_text().split()
        except FileNotFoundError:
            return []
        return [d for d in dict.fromkeys(digests) if DIGEST.match(d) and self.has(d)]

    async def put(self, digest: str | None, chunks: AsyncIterator[bytes]) -> int:
        """Store what `chunks` yield under `digest`; returns its size. Refuses content of another digest."""
        return (await self.put_content(digest, chunks))[1]

    async def put_content(self, digest: str | None, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        """Store what `chunks` yield; returns its digest and size. With `digest`, refuses other content."""
        target = self.path(digest) if digest is not None else None
        temporary = self.root / "tmp" / uuid.uuid4().hex
        hasher, header, size = hashlib.sha256(), hashlib.sha256(), 0
        loop = asyncio.get_running_loop()
        try:
            with temporary.open("wb", buffering=0) as out:
                working: asyncio.Future | None = None
                async for batch in _batches(chunks):
                    for piece in batch:
                        if size < HEAD_BYTES:
                            header.update(piece[: HEAD_BYTES - size])
                        size += len(piece)
                    if working is not None:
                        await working
                    working = asyncio.gather(
                        loop.run_in_executor(None, _hash_all, hasher, batch),
                        loop.run_in_executor(None, _write_all, out, batch),
                    )
                if working is not None:
                    await working
            actual = "sha256:" + hasher.hexdigest()
            if digest is not None and actual != digest:
                raise DigestMismatch(mismatch(actual, digest))
            target = self.path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
            self._index_head(size, header.hexdigest(), actual)
            return actual, size
        finally:
            temporary.unlink(missing_ok=True)

    def _index_head(self, size: int, head: str, digest: str) -> None:
        index = self._head_index(size, head)
        if digest in self.candidates(size, head):
            return
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a") as f:  # one short line in append mode: concurrent writers do not interleave
            f.write(digest + "\n")


def _touch(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _hash_all(hasher: hashlib._Hash, batch: list[bytes]) -> None:
    for piece in batch:
        hasher.update(piece)


def _write_all(out: object, batch: list[bytes]) -> None:
    for piece in batch:
        view = memoryview(piece)
        while view:
            written = out.write(view)  # type: ignore[attr-defined]
            view = view[written:]
