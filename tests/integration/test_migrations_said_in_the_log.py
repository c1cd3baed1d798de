"""An upgrade's migrations are said in the log, one line each with its duration, and one that rewrites rows says so
before it starts: a start that rewrote a large table for minutes in silence looked hung, and an operator could not
tell afterwards which migrations a start had applied."""

from __future__ import annotations

import logging
import re

import pytest

from modelreg.projections.migrations import migrate
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations


async def test_a_start_on_older_data_logs_each_migration_it_applies(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    newer = {("registry", 13), ("registry", 14), ("triggers", 8)}
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, [m for m in all_migrations() if (m.component, m.number) not in newer])  # the older build
        with caplog.at_level(logging.INFO, logger="modelreg.projections.migrations"):
            await migrate(pool, all_migrations())
            said = [r.getMessage() for r in caplog.records]
            await migrate(pool, all_migrations())  # nothing left to apply: nothing said
    finally:
        await pool.close()

    assert [m for m in said if m.startswith("applying")] == [
        "applying migration registry 13: keeps each alias on the newest version holding it; it may take a while",
        "applying migration triggers 8: records when each automation was switched; it may take a while",
    ]
    applied = [m for m in said if m.startswith("applied")]
    assert len(applied) == 3 and len(said) == 5
    assert re.fullmatch(r"applied migration registry 13 \(keeps each alias .*\) in \d+\.\d\d s", applied[0])
    assert re.fullmatch(r"applied migration registry 14 in \d+\.\d\d s", applied[1])
    assert applied[2].startswith("applied migration triggers 8 (records when each automation was switched) in ")


async def test_a_new_database_says_its_schema_was_created_in_one_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        with caplog.at_level(logging.INFO, logger="modelreg.projections.migrations"):
            await migrate(pool, all_migrations())
    finally:
        await pool.close()
    [said] = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(rf"created the schema: {len(list(all_migrations()))} migrations in \d+\.\d\d s", said)
