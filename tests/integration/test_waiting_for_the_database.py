"""A process started while its PostgreSQL is away (restarting, or starting beside it after a host's reboot) waits
for it as for the broker, instead of exiting and staying down once the database is back; one that never comes
is reported with what to check, without its password."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from modelreg.services.bootstrap import NeverReached, database_pool, started
from modelreg.services.infra.event_log import event_log_for
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


async def test_a_database_url_asking_for_ssl_a_server_without_it_is_refused_at_once_saying_so(
    database_url: str,
) -> None:
    # The refusal was waited out as an outage for 2 minutes, then reported as a database that did not answer.
    port, parts = _free_port(), urlsplit(database_url)
    server = await _database_behind(port, database_url)  # the tests' PostgreSQL runs without SSL
    try:
        asking_for_ssl = f"postgresql://{parts.username or 'postgres'}@127.0.0.1:{port}{parts.path}?sslmode=require"
        with pytest.raises(NeverReached) as refused:
            await database_pool(Settings(database_url=asking_for_ssl), pool_size=2, durable_commits=True, wait_s=60)
    finally:
        server.close()
    assert "refused this process" in str(refused.value) and "rejected SSL upgrade" in str(refused.value)
    assert "sslmode=prefer or disable" in str(refused.value)


def _as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def _role_with_no_connection_free(database_url: str) -> tuple[str, str]:
    """A role PostgreSQL lets no more connections in for (53300, too_many_connections: as with max_connections
    reached, which the test cannot reach without taking every other test's connections too)."""
    role = f"busy_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        await admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
    finally:
        await admin.close()
    return role, _as_role(database_url, role)


async def test_a_process_waits_for_a_connection_of_a_full_database_to_come_free(database_url: str) -> None:
    role, as_role = await _role_with_no_connection_free(database_url)

    async def freed() -> None:
        await asyncio.sleep(1.5)  # refused meanwhile: too many connections
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT 10")
        finally:
            await admin.close()

    freeing = asyncio.create_task(freed())
    pool = await database_pool(Settings(database_url=as_role), pool_size=2, durable_commits=True, wait_s=30)
    try:
        assert await pool.fetchval("SELECT current_user") == role
    finally:
        await pool.close()
        await freeing


async def test_a_database_whose_connections_stay_taken_is_reported_in_one_line_naming_max_connections(
    database_url: str,
) -> None:
    _, as_role = await _role_with_no_connection_free(database_url)
    with pytest.raises(NeverReached, match=r"had no connection free for 1 s .*raise its max_connections") as e:
        await database_pool(Settings(database_url=as_role), pool_size=2, durable_commits=True, wait_s=1.0)
    assert "\n" not in str(e.value)


async def test_an_export_waits_for_a_full_database_as_a_server_does(database_url: str) -> None:
    _, as_role = await _role_with_no_connection_free(database_url)
    settings = Settings(database_url=as_role)
    with pytest.raises(NeverReached, match="raise its max_connections"):
        await started(event_log_for(settings), settings, wait_s=1.0)
