"""Each API process notes when a key was presented and writes the uses together, every half minute: the latest use
of a key wins, whichever process wrote it, and uses that PostgreSQL could not take wait for the next write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from modelreg.services.http.key_uses import KeyUses
from modelreg.services.infra.database import create_pool
from modelreg.services.settings import Settings


@pytest.fixture
def log_kind() -> str:
    return "postgres"


async def _written(pool: asyncpg.Pool) -> dict[str, datetime]:
    return {r["key_id"]: r["last_used_at"] for r in await pool.fetch("SELECT * FROM api_key_uses")}


async def test_the_latest_use_of_a_key_wins_whichever_api_process_writes_it(pool: asyncpg.Pool) -> None:
    first_api, second_api = KeyUses(pool), KeyUses(pool)
    first_api.note("k1")
    second_api.note("k1")
    second_api.note("k2")
    latest, k2 = second_api.last_used("k1", None), second_api.last_used("k2", None)
    await second_api.write()
    await first_api.write()  # noted earlier, written later: it does not move the use back

    assert await _written(pool) == {"k1": latest, "k2": k2}
    assert latest is not None and datetime.now(UTC) - latest < timedelta(seconds=30)


async def test_an_api_shows_its_own_uses_before_it_writes_them(pool: asyncpg.Pool) -> None:
    uses = KeyUses(pool)
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    assert uses.last_used("k1", long_ago) == long_ago
    uses.note("k1")
    mine = uses.last_used("k1", long_ago)
    assert mine is not None and mine > long_ago
    assert uses.last_used("k1", mine + timedelta(seconds=1)) == mine + timedelta(seconds=1)  # another wrote later


async def test_uses_postgresql_could_not_take_are_written_once_it_is_back(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    gone = await create_pool(settings.database_url, min_size=0, max_size=1)
    await gone.close()
    uses = KeyUses(gone)
    uses.note("k1")
    await uses.write()  # refused: the pool is closed

    uses.pool = pool
    await uses.write()
    assert set(await _written(pool)) == {"k1"}


async def test_uses_are_written_when_the_api_stops(pool: asyncpg.Pool) -> None:
    async with KeyUses(pool, flush_s=3600).written() as uses:
        uses.note("k1")
    assert set(await _written(pool)) == {"k1"}
