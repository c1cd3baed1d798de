"""A connection goes back to the pool with no transaction left open (services/infra/database.py releases it
without asyncpg's reset query, and without its timer)."""

from __future__ import annotations

import asyncpg

from modelreg.services.infra.database import create_pool
from modelreg.services.settings import Settings


async def test_a_connection_released_inside_a_transaction_comes_back_outside_it(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        connection = await pool.acquire()
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("CREATE TEMP TABLE left_behind (n int)")
        await pool.release(connection)  # a bug's path: never committed nor rolled back

        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None  # rolled back
    finally:
        await pool.close()


async def test_a_connection_comes_back_unchanged_after_ordinary_work(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        async with connection.transaction():
            assert await connection.fetchval("SELECT 1") == 1
    async with pool.acquire() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT 2") == 2
