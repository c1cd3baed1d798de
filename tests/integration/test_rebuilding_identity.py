"""Who may read what is decided on every request by the identity tables: rebuilt while the API serves, they go
from what they were to what the log rebuilds, never through the log's past (real PostgreSQL; Kafka or its log)."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest
from support.history import registry_history
from support.tables import dump

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    ScopeMadePrivate,
    principal_stream,
    visibility_stream,
)
from modelreg.events.log import EventLog
from modelreg.projections.identity import IdentityProjection
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.services import rebuild as rebuilding
from modelreg.services.bootstrap import process_parts
from modelreg.services.settings import Settings

ADMIN = Actor(kind="user", id="root")
BOB = Actor(kind="user", id="bob")


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _identity_history() -> list[Envelope]:
    """Bob's two keys early on; much later, one of them revoked (it leaked) and a team he has no grant on made
    private."""
    registry = registry_history(400)
    issued = [
        Envelope.new(
            ApiKeyIssued(key_id=key_id, principal=BOB, key_sha256=_sha(key_id), role="member"),
            stream=principal_stream(BOB),
            actor=ADMIN,
        )
        for key_id in ("bobkey000001", "bobkey000002")
    ]
    revoked = Envelope.new(
        ApiKeyRevoked(key_id="bobkey000002", principal=BOB), stream=principal_stream(BOB), actor=ADMIN
    )
    private = Envelope.new(ScopeMadePrivate(scope="entity:lynx"), stream=visibility_stream("entity:lynx"), actor=ADMIN)
    return [*issued, *registry, revoked, private]


async def test_a_rebuild_of_identity_never_shows_a_revoked_key_live_or_a_private_team_public_while_it_runs(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await event_log.append(_identity_history())
    await rebuilding.rebuild(settings, "identity")  # built once, as the server's projector would have
    built = await dump(settings.database_url, IdentityProjection.tables)
    identity = IdentityQueries(pool)
    assert await identity.principal_of_key(_sha("bobkey000002")) is None
    assert "entity:lynx" in (await identity.principal_of_key(_sha("bobkey000001")) or {})["private"]

    # The replay in batches small enough for requests to come between them, as a large log's batches do.
    monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 25)
    seen: list[str] = []
    rebuilt = asyncio.Event()

    async def requests_meanwhile() -> None:
        while not rebuilt.is_set():
            if await identity.principal_of_key(_sha("bobkey000002")) is not None:
                seen.append("the revoked key live")
            bob = await identity.principal_of_key(_sha("bobkey000001"))
            if bob is not None and "entity:lynx" not in bob["private"]:
                seen.append("entity:lynx public")
            await asyncio.sleep(0)

    requests = asyncio.create_task(requests_meanwhile())
    try:
        await rebuilding.rebuild(settings, "identity")
    finally:
        rebuilt.set()
        await requests

    assert sorted(set(seen)) == []
    assert await dump(settings.database_url, IdentityProjection.tables) == built
    async with process_parts(settings) as parts:
        ends = await parts.event_log.end_positions()
    stored = {
        r["partition"]: r["next_offset"]
        for r in await pool.fetch(
            "SELECT partition, next_offset FROM projection_positions WHERE projection = 'identity'"
        )
    }
    assert {p: stored.get(p, 0) for p in ends} == ends
