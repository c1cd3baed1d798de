"""A Launch job attempt's key lives as long as its attempt: the end of another attempt of the same job, even one
appended after the next claim, leaves it alone."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
from support.tables import positions
from support.waiting import wait_until
from uuid_utils.compat import uuid7

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import ApiKeyIssued, ApiKeyRevoked, principal_stream
from modelreg.events.launch import JobCancelled, JobClaimed, JobFinished, JobRequeued, job_stream
from modelreg.events.log import EventLog
from modelreg.projections.identity import JOB_KEYS_V2, IdentityProjection
from modelreg.projections.migrations import migrate
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations
from modelreg.services.settings import Settings

AGENT = Actor(kind="user", id="gpu")


def claim(job_id: object, attempt: int, key_id: str, claimed_with: str | None = None) -> JobClaimed:
    return JobClaimed(
        job_id=job_id,
        agent_id="user:gpu:host-1",
        attempt=attempt,
        scope="entity:acme",
        key_id=key_id,
        key_sha256=hashlib.sha256(key_id.encode()).hexdigest(),
        key_role="member",
        key_scopes=("entity:acme", "registry"),
        claimed_with=claimed_with,
    )


async def live_keys(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT key_id FROM api_keys WHERE revoked_at IS NULL ORDER BY key_id")
    return [r["key_id"] for r in rows]


async def test_a_late_end_of_an_earlier_attempt_leaves_the_next_attempts_key_live(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    job, other = uuid7(), uuid7()
    events = [
        claim(job, 1, "attempt1key1"),
        JobRequeued(job_id=job, attempt=1, reason="agent vanished"),
        claim(job, 2, "attempt2key2"),
        # The vanished agent's report of attempt 1, appended after attempt 2 was claimed.
        JobFinished(job_id=job, attempt=1, state="failed", exit_code=1),
        claim(other, 1, "otherjobkey1"),
    ]
    await event_log.append([Envelope.new(e, stream=job_stream(e.job_id), actor=AGENT) for e in events])
    runner, stopping = ProjectionRunner(IdentityProjection(), event_log, pool), asyncio.Event()
    running = asyncio.create_task(runner.run(stopping))
    try:
        await wait_until(lambda: caught_up(settings.database_url, event_log))
        assert await live_keys(pool) == ["attempt2key2", "otherjobkey1"]

        await event_log.append([Envelope.new(JobCancelled(job_id=job), stream=job_stream(job), actor=AGENT)])
        await wait_until(lambda: caught_up(settings.database_url, event_log))
        assert await live_keys(pool) == ["otherjobkey1"]
    finally:
        stopping.set()
        await running


async def test_revoking_an_agents_key_revokes_the_attempts_it_claimed_in_either_order_on_the_log(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    """The revocation (the principal's stream) and a claim made with the key just before it (the job's stream) may
    be applied in either order: a claim applied after it is issued revoked."""
    agent_keys = [
        ApiKeyIssued(key_id=key_id, principal=AGENT, key_sha256=hashlib.sha256(key_id.encode()).hexdigest(), role=role)
        for key_id, role in (("hostonekey01", "member"), ("hosttwokey02", "member"))
    ]
    before, after, elsewhere = uuid7(), uuid7(), uuid7()
    on_log = [
        *[Envelope.new(e, stream=principal_stream(AGENT), actor=AGENT) for e in agent_keys],
        Envelope.new(claim(before, 1, "beforekey001", "hostonekey01"), stream=job_stream(before), actor=AGENT),
        Envelope.new(claim(elsewhere, 1, "elsewhere001", "hosttwokey02"), stream=job_stream(elsewhere), actor=AGENT),
        Envelope.new(
            ApiKeyRevoked(key_id="hostonekey01", principal=AGENT), stream=principal_stream(AGENT), actor=AGENT
        ),
        Envelope.new(claim(after, 1, "afterkey0001", "hostonekey01"), stream=job_stream(after), actor=AGENT),
    ]
    await event_log.append(on_log)
    runner, stopping = ProjectionRunner(IdentityProjection(), event_log, pool), asyncio.Event()
    running = asyncio.create_task(runner.run(stopping))
    try:
        await wait_until(lambda: caught_up(settings.database_url, event_log))
        assert await live_keys(pool) == ["elsewhere001", "hosttwokey02"]
        revoked = await pool.fetch("SELECT DISTINCT revoked_at, revoked_by FROM api_keys WHERE revoked_at IS NOT NULL")
        assert [r["revoked_by"] for r in revoked] == [str(AGENT)]  # and one time: the key's, in either order
        assert len(revoked) == 1
    finally:
        stopping.set()
        await running


async def caught_up(dsn: str, log: EventLog) -> bool:
    ends = await log.end_positions()
    done = await positions(dsn, "identity", log.topic)
    return all(done.get(p, 0) >= end for p, end in ends.items())


async def test_attempt_keys_issued_before_the_upgrade_get_their_attempt_from_their_label(database_url: str) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, [m for m in all_migrations() if m.sql is not JOB_KEYS_V2])
        job = uuid7()
        await pool.execute(
            "INSERT INTO api_keys (key_id, key_sha256, principal_kind, principal_id, role, label, issued_at, "
            "issued_by, scopes, job_id) VALUES ('attempt3key3', $1, 'user', 'gpu', 'member', $2, now(), "
            "'user:gpu', '{entity:acme}', $3)",
            "c" * 64,
            f"job {job} attempt 3",
            job,
        )
        await migrate(pool, all_migrations())
        assert await pool.fetchval("SELECT job_attempt FROM api_keys WHERE key_id = 'attempt3key3'") == 3
    finally:
        await pool.close()
