"""Reads of the Launch and trigger read models, for resolvers, agents, the automation runner and commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


class LaunchQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def queue(self, name: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM launch_queues WHERE name = $1", name)
        return dict(row) if row else None

    async def queues(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch("SELECT * FROM launch_queues ORDER BY name")]

    async def job(self, job_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM launch_jobs WHERE job_id = $1", job_id)
        return dict(row) if row else None

    async def entity_of_job(self, job_id: UUID) -> str | None:
        return await self.pool.fetchval("SELECT entity FROM launch_jobs WHERE job_id = $1", job_id)

    async def jobs_by_ids(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM launch_jobs WHERE job_id = ANY($1::uuid[])", ids)
        return {r["job_id"]: dict(r) for r in rows}

    async def jobs(
        self, *, queue: str | None, state: str | None, limit: int, hidden: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Waiting jobs in the order agents take them (priority, then age); others newest first. `hidden`:
        private entities the caller may not read (projections/readable.py)."""
        order = "priority DESC, enqueued_at" if state == "queued" else "enqueued_at DESC"
        rows = await self.pool.fetch(
            f"SELECT * FROM launch_jobs WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2) "
            f"AND entity <> ALL($4::text[]) ORDER BY {order} LIMIT $3",
            queue,
            state,
            limit,
            list(hidden),
        )
        return [dict(r) for r in rows]

    async def next_waiting(self, queues: list[str], limit: int, hidden: Sequence[str] = ()) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM launch_jobs WHERE state = 'queued' AND queue = ANY($1::text[]) "
            "AND entity <> ALL($3::text[]) ORDER BY priority DESC, enqueued_at LIMIT $2",
            queues,
            limit,
            list(hidden),
        )
        return [dict(r) for r in rows]

    async def output(self, job_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT attempt, stream, text, captured_at FROM launch_job_output WHERE job_id = $1 ORDER BY attempt, event_id",
            job_id,
        )
        return [dict(r) for r in rows]

    async def orphaned_jobs(self, silent_since: datetime) -> list[dict[str, Any]]:
        """Claimed or running jobs whose agent has not been heard from since `silent_since`."""
        rows = await self.pool.fetch(
            """SELECT j.job_id, j.attempt, j.agent_id, a.last_seen FROM launch_jobs j
               LEFT JOIN launch_agents a ON a.agent_id = j.agent_id
               WHERE j.state IN ('claimed', 'running') AND coalesce(a.last_seen, j.claimed_at) < $1""",
            silent_since,
        )
        return [dict(r) for r in rows]

    async def automation(self, automation_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM automations WHERE automation_id = $1", automation_id)
        return dict(row) if row else None

    async def automations(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch("SELECT * FROM automations ORDER BY created_at")]

    async def pending_firings(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM automation_firings WHERE status = 'pending' ORDER BY occurred_at LIMIT $1", limit
        )
        return [dict(r) for r in rows]

    async def firings(self, automation_id: UUID, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM automation_firings WHERE automation_id = $1 ORDER BY occurred_at DESC LIMIT $2",
            automation_id,
            limit,
        )
        return [dict(r) for r in rows]

    async def deliveries(self, automation_id: UUID, limit: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM webhook_deliveries WHERE automation_id = $1 ORDER BY attempted_at DESC, attempt DESC LIMIT $2",
            automation_id,
            limit,
        )
        return [dict(r) for r in rows]
