"""An agent is taken for vanished, and its jobs requeued, when it has been silent while others were heard. While
no agent is heard at all (the API or the supervisor down for a minute: an upgrade, a restart), every agent looks
silent: requeueing their jobs then killed every running job of agents that were alive all along."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from uuid_utils.compat import uuid7

from modelreg.projections.launch_queries import LaunchQueries

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)


async def agent_heard(pool: asyncpg.Pool, agent_id: str, at: datetime) -> None:
    await pool.execute(
        "INSERT INTO launch_agents (agent_id, queues, running_jobs, last_seen) VALUES ($1, '{cpu}', '{}', $2)",
        agent_id,
        at,
    )


async def job_running_on(pool: asyncpg.Pool, agent_id: str) -> None:
    await pool.execute(
        "INSERT INTO launch_jobs (job_id, queue, entity, project, priority, source, config, overrides, state, "
        "attempt, agent_id, enqueued_at, enqueued_by, claimed_at) "
        "VALUES ($1, 'cpu', 'acme', 'p', 0, '{}', '{}', '{}', 'running', 1, $2, $3, 'user:x', $3)",
        uuid7(),
        agent_id,
        T0,
    )


async def test_jobs_of_agents_silent_while_nobody_was_heard_are_left_running(pool: asyncpg.Pool) -> None:
    await agent_heard(pool, "a1", T0)
    await agent_heard(pool, "a2", T0 + timedelta(seconds=1))
    await job_running_on(pool, "a1")
    await job_running_on(pool, "a2")
    launch = LaunchQueries(pool)

    # The server comes back after 10 minutes: nobody was heard meanwhile.
    assert await launch.orphaned_jobs(T0 + timedelta(minutes=10), TIMEOUT) == []

    # a2 beats again; a1 stays silent: it vanished.
    await pool.execute("UPDATE launch_agents SET last_seen = $1 WHERE agent_id = 'a2'", T0 + timedelta(minutes=10))
    orphans = await launch.orphaned_jobs(T0 + timedelta(minutes=10, seconds=1), TIMEOUT)
    assert [job["agent_id"] for job in orphans] == ["a1"]
