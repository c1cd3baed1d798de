"""A process started while its PostgreSQL is away (restarting, or starting beside it after a host's reboot) waits
for it as for the broker, instead of exiting and staying down once the database is back; one that never comes
is reported with what to check, without its password."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from modelreg.services.bootstrap import database_pool
from modelreg.services.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _database_behind(port: int, database_url: str) -> asyncio.Server:
    """A TCP port that leads to the test's PostgreSQL (on its socket or its port)."""
    parts = urlsplit(database_url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    pg_port = parts.port or 5432

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if host.startswith("/"):
            upstream = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{pg_port}")
        else:
            upstream = await asyncio.open_connection(host, pg_port)
        await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))

    return await asyncio.start_server(forward, "127.0.0.1", port)


async def test_a_process_waits_for_a_database_that_comes_up_after_it(database_url: str) -> None:
    port, parts = _free_port(), urlsplit(database_url)
    behind_a_port = f"postgresql://{parts.username or 'postgres'}@127.0.0.1:{port}{parts.path}"

    async def coming_up() -> asyncio.Server:
        await asyncio.sleep(1.5)  # refused meanwhile
        return await _database_behind(port, database_url)

    up = asyncio.create_task(coming_up())
    pool = await database_pool(Settings(database_url=behind_a_port), pool_size=2, durable_commits=True, wait_s=30)
    try:
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
        (await up).close()


async def test_a_database_that_never_answers_is_reported_with_what_to_check() -> None:
    settings = Settings(database_url=f"postgresql://ops:hunter2@127.0.0.1:{_free_port()}/registry")
    with pytest.raises(
        RuntimeError, match=r"PostgreSQL at postgresql://ops:\*\*\*@127.0.0.1:\d+/registry did not"
    ) as e:
        await database_pool(settings, pool_size=2, durable_commits=True, wait_s=1.0)
    assert "check DATABASE_URL" in str(e.value) and "hunter2" not in str(e.value)
