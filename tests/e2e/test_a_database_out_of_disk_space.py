"""PostgreSQL out of disk space, as the operator and a client see it: a write answers UNAVAILABLE (retriable) naming
the cause, not INTERNAL under an incident id; /healthz says `degraded` and why while it lasts; once space is freed,
writes and projections go on. PostgreSQL raises the real SQLSTATE (disk_full) from a trigger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from support.stack import Stack

from modelreg.events.database_trouble import TROUBLES_SEEN
from modelreg.services.settings import Settings

CARD = "mutation($m: String!, $d: String!) { updateModelCard(input: {registeredModel: $m, description: $d}) { name } }"


@pytest.fixture
def log_kind() -> str:
    return "postgres"  # the zero-infra mode: the log's appends go to the PostgreSQL that is full


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()
    TROUBLES_SEEN.mended()


async def test_a_full_disk_is_told_to_the_caller_and_to_healthz_until_space_is_freed(
    stack: Stack, database: asyncpg.Connection
) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    key = auth["Authorization"].removeprefix("Bearer ")
    await stack.projected()
    await database.execute(
        """CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
               RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
           END $$;
           CREATE TRIGGER disk_full BEFORE INSERT ON event_log FOR EACH ROW EXECUTE FUNCTION disk_full()"""
    )

    answer = await stack.graphql(CARD, {"m": "classifier", "d": "first"}, key=key)
    [error] = answer["errors"]
    assert error["message"] == "the registry's database is out of disk space: retry later"
    assert error["extensions"] == {"code": "UNAVAILABLE", "retriable": True}
    health = await (await stack.client.get("/healthz", headers=auth)).json()
    assert health["status"] == "degraded"
    assert health["postgres"]["trouble"] == (
        "the registry's database is out of disk space: projections and writes wait; free space on PostgreSQL's disk"
    )
    assert (await (await stack.client.get("/healthz")).json())["status"] == "degraded"  # the probes see it too
    assert "\nmodelreg_database_trouble 1.0\n" in await (await stack.client.get("/metrics", headers=auth)).text()

    await database.execute("DROP TRIGGER disk_full ON event_log")  # space freed
    answer = await stack.graphql(CARD, {"m": "classifier", "d": "again"}, key=key)
    assert answer["data"]["updateModelCard"]["name"] == "classifier"
    await stack.projected()
    health = await (await stack.client.get("/healthz", headers=auth)).json()
    assert health["status"] == "ok" and "trouble" not in health["postgres"]
    assert "\nmodelreg_database_trouble 0.0\n" in await (await stack.client.get("/metrics", headers=auth)).text()
