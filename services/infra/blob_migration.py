"""`modelreg migrate-blobs`: a folder store's files copied into a bucket, verified, resumable.

Each file is looked up first: one the bucket holds and vouches for (its SHA-256) is skipped, so a second run
after an interruption copies only the rest. Each copy is verified by the store (object_store.put_file); a
file whose content no longer matches its name is reported, not copied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import InvalidInput
from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation


@dataclass
class MigrationReport:
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def folder_blobs(root: Path) -> list[tuple[str, Path]]:
    """(digest, path) of each blob of a folder store: <root>/sha256/<2 hex>/<62 hex>."""
    found = []
    for path in sorted((root / "sha256").glob("*/*")):
        hexdigest = path.parent.name + path.name
        if len(hexdigest) == 64 and path.is_file():
            found.append((f"sha256:{hexdigest}", path))
    return found


async def migrate_folder_to_bucket(
    root: Path,
    location: ObjectStoreLocation,
    parallel: int = 4,
    on_file: Callable[[str, int, bool], None] = lambda digest, size, copied: None,
) -> MigrationReport:
    report = MigrationReport()
    gate = asyncio.Semaphore(max(1, parallel))
    async with ObjectBlobStore(location) as store:
        await store.create_bucket()

        async def one(digest: str, path: Path) -> None:
            async with gate:
                size = path.stat().st_size
                if await store.size(digest) == size:
                    report.skipped += 1
                    on_file(digest, size, False)
                    return
                try:
                    await store.put_file(digest, path)
                except (InvalidInput, Exception) as exc:  # noqa: BLE001 -- reported per file, the others go on
                    report.failed.append(f"{digest}: {exc}")
                    return
                report.copied += 1
                report.copied_bytes += size
                on_file(digest, size, True)

        await asyncio.gather(*(one(digest, path) for digest, path in folder_blobs(root)))
    return report
