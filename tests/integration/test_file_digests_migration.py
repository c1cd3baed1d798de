"""Versions logged before the file digests had a column of their own are still found by their files."""

from __future__ import annotations

import uuid

import asyncpg

from modelreg.projections.migrations import migrate
from modelreg.projections.readable import FILES_V2, FILES_V3, FILES_V4, Readable, Visibility
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations

PRIVATE = Readable(hidden_entities=frozenset({"secret-team"}))
WEIGHTS, CONFIG = "sha256:" + "a" * 64, "sha256:" + "b" * 64


async def test_a_private_teams_files_stay_hidden_and_found_after_the_digests_move_to_a_column(
    database_url: str,
) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, [m for m in all_migrations() if m.sql not in (FILES_V2, FILES_V3, FILES_V4)])
        manifest = [
            {"path": "model.pt", "size": 3, "digest": WEIGHTS},
            {"path": "config.json", "size": 2, "digest": CONFIG},
        ]
        await pool.execute(
            "INSERT INTO artifact_versions (id, entity, project, name, artifact_type, version_index, digest, manifest, "
            "metadata, aliases, created_at, created_by) "
            "VALUES ($1, 'secret-team', 'nature', 'classifier', 'model', 0, $2, $3, '{}', '{}', now(), 'user:ana')",
            uuid.uuid4(),
            "sha256:" + "c" * 64,
            manifest,
        )
        await migrate(pool, all_migrations())

        assert await pool.fetchval("SELECT file_digests FROM artifact_versions") == [WEIGHTS, CONFIG]
        visibility = Visibility(pool)
        assert await visibility.blob_hidden(WEIGHTS, PRIVATE)
        assert not await visibility.blob_hidden(WEIGHTS, Readable(hidden_entities=frozenset({"another-team"})))
        # No version lists it (uploaded, not logged yet): not hidden here; out of sight of /blobs lookups all the
        # same (services/http/blob_visibility.py), since no version the caller reads lists it.
        assert not await visibility.blob_hidden("sha256:" + "d" * 64, PRIVATE)
        assert not await visibility.blob_readable("sha256:" + "d" * 64, PRIVATE)
    finally:
        await pool.close()


async def test_a_references_digest_stops_counting_as_a_stored_file_of_its_version_at_the_upgrade(
    database_url: str,
) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, [m for m in all_migrations() if m.sql not in (FILES_V3, FILES_V4)])
        manifest = [
            {"path": "model.pt", "size": 3, "digest": WEIGHTS, "ref": None},
            {"path": "far.bin", "size": 0, "digest": CONFIG, "ref": "s3://bucket/far.bin"},
        ]
        await pool.execute(
            "INSERT INTO artifact_versions (id, entity, project, name, artifact_type, version_index, digest, manifest, "
            "metadata, aliases, created_at, created_by, file_digests) "
            "VALUES ($1, 'acme', 'nature', 'peek', 'dataset', 0, $2, $3, '{}', '{}', now(), 'user:otto', $4)",
            uuid.uuid4(),
            "sha256:" + "c" * 64,
            manifest,
            [WEIGHTS, CONFIG],
        )
        await migrate(pool, all_migrations())

        assert await pool.fetchval("SELECT file_digests FROM artifact_versions") == [WEIGHTS]
    finally:
        await pool.close()
