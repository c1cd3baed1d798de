"""A deleted version is read by no one: its files are downloaded through it by no caller, an admin included,
while a file another live version lists stays readable through that one (the store keeps one copy per content)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from modelreg.projections.migrations import migrate
from modelreg.projections.readable import EVERYTHING, Readable, Visibility
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations

# A viewer of the public acme team whose installation hides another team.
ANOTHER_TEAMS_VIEWER = Readable(hidden_entities=frozenset({"lynx"}))
PII, SHARED, UPLOADING = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64


async def logged(pool: asyncpg.Pool, name: str, digests: list[str], *, deleted: bool = False) -> None:
    manifest: list[dict[str, Any]] = [{"path": f"{d[-4:]}.csv", "size": 3, "digest": d} for d in digests]
    await pool.execute(
        "INSERT INTO artifact_versions (id, entity, project, name, artifact_type, version_index, digest, manifest, "
        "metadata, aliases, created_at, created_by, file_digests, deleted_at, deleted_by) "
        "VALUES ($1, 'acme', 'faces', $2, 'dataset', 0, $3, $4, '{}', '{}', now(), 'user:ana', $5, "
        "CASE WHEN $6 THEN now() END, CASE WHEN $6 THEN 'user:ana' END)",
        uuid.uuid4(),
        name,
        "sha256:" + uuid.uuid4().hex * 2,
        manifest,
        digests,
        deleted,
    )


async def test_a_deleted_versions_files_are_read_by_no_one_but_a_file_a_live_version_shares_stays(
    database_url: str,
) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, all_migrations())
        await logged(pool, "customer-faces", [PII, SHARED], deleted=True)
        await logged(pool, "public-faces", [SHARED])
        visibility = Visibility(pool)

        for who in (EVERYTHING, ANOTHER_TEAMS_VIEWER):
            assert not await visibility.blob_readable(PII, who), who
            assert await visibility.blob_readable(SHARED, who), who
            assert await visibility.blobs_hidden([PII, SHARED, UPLOADING], who) == {PII}, who
        # A file no version lists yet (its version still uploading) is read as before: by who sees everything.
        assert await visibility.blob_readable(UPLOADING, EVERYTHING)
        assert not await visibility.blob_readable(UPLOADING, ANOTHER_TEAMS_VIEWER)
    finally:
        await pool.close()
