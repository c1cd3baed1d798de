"""Reads of the Launch and trigger read models, for resolvers, agents, the automation runner and commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

# What a list of jobs reads: each job's source (a code diff), config and overrides may be as big as an event (8 MiB),
# and a page of hundreds read whole took hundreds of MiB whatever fields were asked for. They are read when asked, a
# few jobs at a time (job_contents; graphql/context.py's JobContentsLoader). `triggered_by` stays: only the
# automation runner writes it, two ids and an event type.
_LISTED_JOB_COLUMNS = """
    job_id, queue, entity, project, priority, triggered_by, state, attempt, agent_id, pid, detail, exit_code, reason,
    run_ids, requeues, enqueued_at, enqueued_by, claimed_at, started_at, finished_at, time_limit_s, returns, retry_of
"""
JOB_CONTENTS = ("source", "config", "overrides")
# Likewise a list of automations leaves out each one's action (a job's source and config, or a webhook's payload
# template: as big as an event), read by automation_actions; its trigger is a few bounded names and patterns. The
# times it was switched on and off, a list that grows with each switch, only the trigger projection reads.
_LISTED_AUTOMATION_COLUMNS = """
    automation_id, name, description, trigger, trigger_event, cooldown_s, enabled, secret_generation, created_at,
    created_by, last_fired_at, deleted_at, previous_secret_generation, previous_secret_until
"""

# Whether an automation watches, or launches jobs in, a hidden scope: the SQL of `Readable.automation`.
AUTOMATION_HIDDEN = """(
    CASE WHEN jsonb_typeof(trigger -> 'registered_model') = 'string' THEN trigger ->> 'registered_model' = ANY({models})
         ELSE coalesce(trigger ->> 'entity' = ANY({entities}), false) END
    OR (action ->> 'kind' = 'launch' AND coalesce(action ->> 'entity' = ANY({entities}), false))
)"""

# Whether the event that fired a firing is about a hidden scope, as scope_of reads it (its registered model,
# else its entity): the firing's facts say which. A firing tells as much as its event.
# A firing whose event is not read yet (stream '': projections/triggers.py, _CLOSED) is hidden from everyone
# with hidden scopes: what it is about is not known yet.
FIRING_HIDDEN = """(coalesce(f.stream = '', false) AND cardinality({entities}) + cardinality({models}) > 0 OR coalesce(
    CASE WHEN f.variables ? 'registered_model' THEN f.variables ->> 'registered_model' = ANY({models})
         ELSE f.variables ->> 'entity' = ANY({entities}) END,
    false
))"""


PENDING_PER_CREATOR = 20
PENDING_PER_AUTOMATION = 5


class LaunchQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def queue(self, name: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM launch_queues WHERE name = $1", name)
        return dict(row) if row else None

    async def queues(self, *, after: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """By name; `after` is the last name of the previous page."""
        rows = await self.pool.fetch(
            "SELECT * FROM launch_queues WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2", after, limit
        )
        return [dict(r) for r in rows]

    async def firing(self, automation_id: UUID, event_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM automation_firings WHERE automation_id = $1 AND event_id = $2", automation_id, event_id
        )
        return dict(row) if row else None

    async def jobs_to_run(self, queue: str, hidden: Sequence[str] = ()) -> int:
        """How many of the queue's jobs are queued, claimed or running; `hidden`: private entities the caller may not
        read (projections/readable.py), whose jobs are not counted."""
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM launch_jobs WHERE queue = $1 AND state IN ('queued', 'claimed', 'running') "
                "AND entity <> ALL($2::text[])",
                queue,
                list(hidden),
            )
        )

    async def automations_launching_into(self, queue: str) -> list[dict[str, Any]]:
        """The automations not deleted (switched on or off) whose action enqueues into the queue, without their
        actions."""
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_AUTOMATION_COLUMNS} FROM automations "
            "WHERE deleted_at IS NULL AND action ->> 'kind' = 'launch' "
            "AND action ->> 'queue' = $1 ORDER BY created_at",
            queue,
        )
        return [dict(r) for r in rows]

    async def automations_created_by(self, creator: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_AUTOMATION_COLUMNS} FROM automations WHERE deleted_at IS NULL AND created_by = $1 "
            "ORDER BY created_at, automation_id",
            creator,
        )
        return [dict(r) for r in rows]

    async def webhook_attempts(self, automation_id: UUID, event_id: UUID) -> int:
        """How many times the firing's webhook was called: a retried firing's attempts go on from there."""
        made = await self.pool.fetchval(
            "SELECT max(attempt) FROM webhook_deliveries WHERE automation_id = $1 AND trigger_event_id = $2",
            automation_id,
            event_id,
        )
        return int(made or 0)

    async def job(self, job_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM launch_jobs WHERE job_id = $1", job_id)
        return dict(row) if row else None

    async def jobs_by_ids(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """Without their source, config and overrides: the jobs that launched a page of runs are a page too."""
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_JOB_COLUMNS} FROM launch_jobs WHERE job_id = ANY($1::uuid[])", ids
        )
        return {r["job_id"]: dict(r) for r in rows}

    async def job_contents(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The source, config and overrides of jobs listed without them, with `read_bytes`: their size as JSON, to
        count against a request's budget."""
        rows = await self.pool.fetch(
            "SELECT job_id, source::text AS source, config::text AS config, overrides::text AS overrides "
            "FROM launch_jobs WHERE job_id = ANY($1::uuid[])",
            ids,
        )
        return {
            r["job_id"]: {
                **{column: orjson.loads(r[column]) for column in JOB_CONTENTS},
                "read_bytes": sum(len(r[column]) for column in JOB_CONTENTS),
            }
            for r in rows
        }

    async def jobs(
        self,
        *,
        queue: str | None,
        state: str | None,
        limit: int,
        after: tuple[Any, ...] | None = None,
        hidden: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Without their source, config and overrides (job_contents reads them). Waiting jobs in the order agents
        take them (priority, then age); others newest first. `after` is the sort key of the last job of the previous
        page: (priority, enqueued_at, job_id) for waiting jobs, (enqueued_at, job_id) for the others. `hidden`:
        private entities the caller may not read (projections/readable.py)."""
        if state == "queued":
            order, key = "priority DESC, enqueued_at, job_id", "(-priority, enqueued_at, job_id) > (-$5::int, $6, $7)"
        else:
            order, key = "enqueued_at DESC, job_id DESC", "(enqueued_at, job_id) < ($5, $6)"
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_JOB_COLUMNS} FROM launch_jobs "
            "WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2) "
            f"AND entity <> ALL($4::text[]) {'AND ' + key if after else ''} ORDER BY {order} LIMIT $3",
            queue,
            state,
            limit,
            list(hidden),
            *(after or ()),
        )
        return [dict(r) for r in rows]

    async def next_waiting(
        self,
        queues: list[str],
        limit: int,
        after: tuple[int, datetime, UUID] | None = None,
        hidden: Sequence[str] = (),
        entities: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Queued jobs of these queues by priority, then age, without their source, config and overrides (as
        `jobs`); `after` as for `jobs(state="queued")`; `hidden` as for `jobs`; `entities`: of these entities only
        (an agent that runs some teams' jobs), None: of all."""
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_JOB_COLUMNS} FROM launch_jobs WHERE state = 'queued' AND queue = ANY($1::text[]) "
            "AND entity <> ALL($3::text[]) AND ($4::text[] IS NULL OR entity = ANY($4::text[])) "
            # Left waiting when its entity was taken off its queue's list: no agent may claim it.
            "AND NOT EXISTS (SELECT 1 FROM launch_queues q WHERE q.name = launch_jobs.queue "
            "AND cardinality(q.entities) > 0 AND launch_jobs.entity <> ALL(q.entities)) "
            f"{'AND (-priority, enqueued_at, job_id) > (-$5::int, $6, $7)' if after else ''} "
            "ORDER BY priority DESC, enqueued_at, job_id LIMIT $2",
            queues,
            limit,
            list(hidden),
            None if entities is None else list(entities),
            *(after or ()),
        )
        return [dict(r) for r in rows]

    async def output(self, job_id: UUID, limit: int, after: tuple[int, UUID] | None = None) -> list[dict[str, Any]]:
        """Up to `limit` chunks of a job's captured output after (attempt, event id) `after`, in the order printed."""
        attempt, event_id = after or (0, UUID(int=0))
        rows = await self.pool.fetch(
            "SELECT event_id, attempt, stream, text, captured_at FROM launch_job_output "
            "WHERE job_id = $1 AND (attempt, event_id) > ($2, $3) ORDER BY attempt, event_id LIMIT $4",
            job_id,
            attempt,
            event_id,
            limit,
        )
        return [dict(r) for r in rows]

    async def orphaned_jobs(self, now: datetime, silent_for: timedelta) -> list[dict[str, Any]]:
        """Claimed or running jobs whose agent has been silent for `silent_for`: before `now`, and before the
        newest heartbeat of any agent. While no agent is heard (the API, or this process, down for a while: an
        upgrade, a restart), every agent looks silent, and requeueing their jobs killed every running job."""
        rows = await self.pool.fetch(
            """WITH newest AS (SELECT max(last_seen) AS heard FROM launch_agents)
               SELECT j.job_id, j.attempt, j.requeues - j.returns AS vanishings, j.agent_id, a.last_seen
               FROM launch_jobs j
               LEFT JOIN launch_agents a ON a.agent_id = j.agent_id CROSS JOIN newest
               WHERE j.state IN ('claimed', 'running')
                 AND coalesce(a.last_seen, j.claimed_at) < least($1::timestamptz, newest.heard) - $2::interval""",
            now,
            silent_for,
        )
        return [dict(r) for r in rows]

    async def automation(self, automation_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM automations WHERE automation_id = $1", automation_id)
        return dict(row) if row else None

    async def automations(
        self,
        *,
        after: tuple[datetime, UUID] | None = None,
        limit: int | None = None,
        hidden_entities: Sequence[str] = (),
        hidden_models: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Without their actions (automation_actions reads them). Oldest first; `after` is the (created_at,
        automation_id) of the last one of the previous page. `hidden_*`: private entities and models the caller may
        not read; an automation is left out when what it watches or the entity it launches jobs in is hidden
        (`Readable.automation`, projections/readable.py)."""
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_AUTOMATION_COLUMNS} FROM automations WHERE deleted_at IS NULL "
            "AND ($1::timestamptz IS NULL OR (created_at, automation_id) > ($1, $2)) "
            f"AND NOT {AUTOMATION_HIDDEN.format(entities='$4::text[]', models='$5::text[]')} "
            "ORDER BY created_at, automation_id LIMIT $3",
            *(after or (None, None)),
            limit,
            list(hidden_entities),
            list(hidden_models),
        )
        return [dict(r) for r in rows]

    async def automation_actions(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The actions of automations listed without them, with `read_bytes` (as `job_contents`)."""
        rows = await self.pool.fetch(
            "SELECT automation_id, action::text AS action FROM automations WHERE automation_id = ANY($1::uuid[])", ids
        )
        return {r["automation_id"]: {"action": orjson.loads(r["action"]), "read_bytes": len(r["action"])} for r in rows}

    async def automation_creators(self, ids: list[UUID]) -> dict[UUID, str]:
        """Who created each of these automations (deleted ones too): they alone read its webhook url whole."""
        rows = await self.pool.fetch(
            "SELECT automation_id, created_by FROM automations WHERE automation_id = ANY($1::uuid[])", ids
        )
        return {r["automation_id"]: r["created_by"] for r in rows}

    async def pattern_refused(self, pattern: str) -> str | None:
        """PostgreSQL's own regular expressions are not Python's (no `(?i)` inline, no `(?P<name>...)`, a
        limit on complexity): a trigger's pattern is checked by the engine that will run it."""
        try:
            await self.pool.fetchval("SELECT '' ~ $1", pattern)
        except (asyncpg.InvalidRegularExpressionError, asyncpg.ProgramLimitExceededError) as exc:
            return str(exc)
        return None

    async def pending_firings(
        self, limit: int, per_creator: int = PENDING_PER_CREATOR, per_automation: int = PENDING_PER_AUTOMATION
    ) -> list[dict[str, Any]]:
        """The oldest pending firings, at most `per_creator` of the automations of one principal and
        `per_automation` of one automation: a webhook that never answers is retried for minutes, and one member's
        firings must not fill the runner's window and hold up every other team's automations, nor one dead
        webhook every other automation of its creator (an evaluation's launch waited a minute behind one)."""
        rows = await self.pool.fetch(
            """SELECT p.* FROM (
                   SELECT f.*, row_number() OVER (PARTITION BY a.created_by ORDER BY f.occurred_at, f.event_id) AS nth
                   FROM (
                       SELECT f.*, row_number() OVER (PARTITION BY f.automation_id ORDER BY f.occurred_at, f.event_id)
                           AS of_automation
                       FROM automation_firings f WHERE f.status = 'pending'
                   ) f JOIN automations a USING (automation_id)
                   WHERE f.of_automation <= $3
               ) p
               WHERE p.nth <= $2 ORDER BY p.occurred_at, p.event_id LIMIT $1""",
            limit,
            per_creator,
            per_automation,
        )
        return [{k: v for k, v in r.items() if k not in ("nth", "of_automation")} for r in rows]

    async def last_fired_at(
        self, automation_id: UUID, *, hidden_entities: Sequence[str], hidden_models: Sequence[str]
    ) -> datetime | None:
        """When it last fired on an event the caller may read (an automation watching every team fires on
        private ones too, and the time would tell when a hidden team acted)."""
        return await self.pool.fetchval(
            "SELECT max(f.occurred_at) FROM automation_firings f WHERE f.automation_id = $1 AND f.status <> 'skipped' "
            f"AND NOT {FIRING_HIDDEN.format(entities='$2::text[]', models='$3::text[]')}",
            automation_id,
            list(hidden_entities),
            list(hidden_models),
        )

    async def firings(
        self,
        automation_id: UUID,
        limit: int,
        before: tuple[datetime, UUID] | None = None,
        *,
        hidden_entities: Sequence[str] = (),
        hidden_models: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (occurred_at, event_id) of the last one of the previous page. Those
        fired by an event about a hidden scope are left out (an automation watching every team fires on
        private ones too)."""
        rows = await self.pool.fetch(
            "SELECT f.* FROM automation_firings f WHERE f.automation_id = $1 "
            "AND ($3::timestamptz IS NULL OR (f.occurred_at, f.event_id) < ($3, $4)) "
            f"AND NOT {FIRING_HIDDEN.format(entities='$5::text[]', models='$6::text[]')} "
            "ORDER BY f.occurred_at DESC, f.event_id DESC LIMIT $2",
            automation_id,
            limit,
            *(before or (None, None)),
            list(hidden_entities),
            list(hidden_models),
        )
        return [dict(r) for r in rows]

    async def deliveries(
        self,
        automation_id: UUID,
        limit: int,
        before: tuple[datetime, UUID] | None = None,
        *,
        hidden_entities: Sequence[str] = (),
        hidden_models: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (attempted_at, event_id) of the last one of the previous page. Those
        of a firing the caller may not read are left out, as `firings` leaves the firing out."""
        rows = await self.pool.fetch(
            "SELECT d.* FROM webhook_deliveries d "
            "LEFT JOIN automation_firings f ON f.automation_id = d.automation_id AND f.event_id = d.trigger_event_id "
            "WHERE d.automation_id = $1 "
            "AND ($3::timestamptz IS NULL OR (d.attempted_at, d.event_id) < ($3, $4)) "
            f"AND NOT {FIRING_HIDDEN.format(entities='$5::text[]', models='$6::text[]')} "
            "ORDER BY d.attempted_at DESC, d.event_id DESC LIMIT $2",
            automation_id,
            limit,
            *(before or (None, None)),
            list(hidden_entities),
            list(hidden_models),
        )
        return [dict(r) for r in rows]
