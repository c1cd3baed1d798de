"""Versions logged before the file digests had a column of their own are still found by their files."""

from __future__ import annotations

import uuid

import asyncpg

from modelreg.projections.migrations import migrate
from modelreg.projections.readable import FILES_V2, Readable, Visibility
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations

PRIVATE = Readable(hidden_entities=frozenset({"secret-team"}))
WEIGHTS, CONFIG = "sha256:" + "a" * 64, "sha256:" + "b" * 64


async def test_a_private_teams_files_stay_hidden_and_found_after_the_digests_move_to_a_column(
    database_url: str,
) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, [m for m in all_migrations() if m.sql is not FILES_V2])
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
        assert not await visibility.blob_hidden("sha256:" + "d" * 64, PRIVATE)  # no version lists it
    finally:
        await pool.close()
