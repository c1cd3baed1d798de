"""The Launch read model: queues, jobs and their states, captured output, and the agents' heartbeats.

A job's events share its stream, so they apply in log order: the first claim of an attempt wins and
later claims change nothing; reports of a requeued (void) attempt change nothing either.
"""

from __future__ import annotations

from modelreg.events.envelope import Envelope
from modelreg.events.launch import (
    AgentHeartbeat,
    JobCancelled,
    JobClaimed,
    JobEnqueued,
    JobFinished,
    JobOutputCaptured,
    JobRequeued,
    JobStarted,
    QueueCreated,
    QueueDeleted,
    QueueEntitiesSet,
)
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement, handles

SCHEMA_V1 = """
CREATE TABLE launch_queues (
    name text PRIMARY KEY,
    resource text NOT NULL,
    resource_config jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL
);
CREATE TABLE launch_jobs (
    job_id uuid PRIMARY KEY,
    queue text NOT NULL,
    entity text NOT NULL,
    project text NOT NULL,
    priority int NOT NULL,
    source jsonb NOT NULL,
    config jsonb NOT NULL,
    overrides jsonb NOT NULL,
    triggered_by jsonb,
    state text NOT NULL,
    attempt int NOT NULL DEFAULT 0,
    agent_id text,
    pid int,
    detail text,
    exit_code int,
    reason text,
    run_ids text[] NOT NULL DEFAULT '{}',
    requeues int NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL,
    enqueued_by text NOT NULL,
    claimed_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz
);
-- What agents poll: the next queued job of a queue, by priority then age.
CREATE INDEX launch_jobs_waiting ON launch_jobs (queue, priority DESC, enqueued_at) WHERE state = 'queued';
CREATE INDEX launch_jobs_by_queue ON launch_jobs (queue, enqueued_at DESC);
CREATE TABLE launch_job_output (
    event_id uuid PRIMARY KEY,
    job_id uuid NOT NULL,
    attempt int NOT NULL,
    stream text NOT NULL,
    text text NOT NULL,
    captured_at timestamptz NOT NULL
);
CREATE INDEX launch_job_output_by_job ON launch_job_output (job_id, attempt, event_id);
CREATE TABLE launch_agents (
    agent_id text PRIMARY KEY,
    queues text[] NOT NULL,
    running_jobs uuid[] NOT NULL,
    last_seen timestamptz NOT NULL
);
"""

# The entities whose jobs a queue takes; none: every entity's.
SCHEMA_V2 = """
ALTER TABLE launch_queues ADD COLUMN entities text[] NOT NULL DEFAULT '{}';
"""

# How long an attempt may run (none: as long as it takes); of its requeues, how many its agent gave back when it
# was stopped (the others: its agent vanished); the ended job it runs again.
SCHEMA_V3 = """
ALTER TABLE launch_jobs ADD COLUMN time_limit_s int, ADD COLUMN returns int NOT NULL DEFAULT 0,
    ADD COLUMN retry_of uuid;
"""

_QUEUE_CREATED = """
INSERT INTO launch_queues (name, resource, resource_config, created_at, created_by, entities)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
"""
_QUEUE_ENTITIES_SET = "UPDATE launch_queues SET entities = $2 WHERE name = $1"
# Its jobs keep its name; the name may be created again.
_QUEUE_DELETED = "DELETE FROM launch_queues WHERE name = $1"

# An automation may enqueue the same job twice after a crash (same id): the first one counts.
_ENQUEUED = """
INSERT INTO launch_jobs (job_id, queue, entity, project, priority, source, config, overrides, triggered_by, state,
                         enqueued_at, enqueued_by, time_limit_s, retry_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11, $12, $13)
ON CONFLICT DO NOTHING
"""

_CLAIMED = """
UPDATE launch_jobs SET state = 'claimed', attempt = $3, agent_id = $2, claimed_at = $4, pid = NULL
WHERE job_id = $1 AND state = 'queued' AND attempt = $3 - 1
"""

_STARTED = """
UPDATE launch_jobs SET state = 'running', started_at = $4, pid = $3, detail = $5
WHERE job_id = $1 AND attempt = $2 AND state = 'claimed'
"""

_OUTPUT = """
INSERT INTO launch_job_output (event_id, job_id, attempt, stream, text, captured_at)
SELECT $6, $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM launch_jobs WHERE job_id = $1 AND attempt = $2)
ON CONFLICT DO NOTHING
"""

_FINISHED = """
UPDATE launch_jobs SET state = $3, exit_code = $4, reason = $5, finished_at = $6, run_ids = $7
WHERE job_id = $1 AND attempt = $2 AND state IN ('claimed', 'running')
"""

_REQUEUED = """
UPDATE launch_jobs SET state = 'queued', agent_id = NULL, pid = NULL, reason = $3, requeues = requeues + 1,
    returns = returns + $4::int
WHERE job_id = $1 AND attempt = $2 AND state IN ('claimed', 'running')
"""

_CANCELLED = """
UPDATE launch_jobs SET state = 'cancelled', reason = $2, finished_at = $3
WHERE job_id = $1 AND state IN ('queued', 'claimed', 'running')
"""

_HEARTBEAT = """
INSERT INTO launch_agents (agent_id, queues, running_jobs, last_seen) VALUES ($1, $2, $3, $4)
ON CONFLICT (agent_id) DO UPDATE SET queues = EXCLUDED.queues, running_jobs = EXCLUDED.running_jobs,
    last_seen = greatest(launch_agents.last_seen, EXCLUDED.last_seen)
"""


class LaunchProjection(Projection):
    name = "launch"
    tables = ("launch_queues", "launch_jobs", "launch_job_output", "launch_agents")
    migrations = (
        Migration("launch", 1, SCHEMA_V1),
        Migration("launch", 2, SCHEMA_V2),
        Migration("launch", 3, SCHEMA_V3),
    )

    @handles(QueueCreated)
    def queue_created(self, e: QueueCreated, envelope: Envelope) -> list[Statement]:
        args = (e.queue, e.resource, e.resource_config, envelope.occurred_at, str(envelope.actor), list(e.entities))
        return [Statement(_QUEUE_CREATED, args)]

    @handles(QueueEntitiesSet)
    def queue_entities_set(self, e: QueueEntitiesSet, envelope: Envelope) -> list[Statement]:
        return [Statement(_QUEUE_ENTITIES_SET, (e.queue, list(e.entities)))]

    @handles(QueueDeleted)
    def queue_deleted(self, e: QueueDeleted, envelope: Envelope) -> list[Statement]:
        return [Statement(_QUEUE_DELETED, (e.queue,))]

    @handles(JobEnqueued)
    def job_enqueued(self, e: JobEnqueued, envelope: Envelope) -> list[Statement]:
        triggered_by = e.triggered_by.model_dump(mode="json") if e.triggered_by else None
        args = (
            e.job_id,
            e.queue,
            e.entity,
            e.project,
            e.priority,
            e.source.model_dump(mode="json"),
            e.config,
            e.overrides,
            triggered_by,
            envelope.occurred_at,
            str(envelope.actor),
            e.time_limit_s,
            e.retry_of,
        )
        return [Statement(_ENQUEUED, args)]

    @handles(JobClaimed)
    def job_claimed(self, e: JobClaimed, envelope: Envelope) -> list[Statement]:
        return [Statement(_CLAIMED, (e.job_id, e.agent_id, e.attempt, envelope.occurred_at))]

    @handles(JobStarted)
    def job_started(self, e: JobStarted, envelope: Envelope) -> list[Statement]:
        return [Statement(_STARTED, (e.job_id, e.attempt, e.pid, envelope.occurred_at, e.detail))]

    @handles(JobOutputCaptured)
    def job_output_captured(self, e: JobOutputCaptured, envelope: Envelope) -> list[Statement]:
        return [Statement(_OUTPUT, (e.job_id, e.attempt, e.stream, e.text, envelope.occurred_at, envelope.id))]

    @handles(JobFinished)
    def job_finished(self, e: JobFinished, envelope: Envelope) -> list[Statement]:
        args = (e.job_id, e.attempt, e.state, e.exit_code, e.reason, envelope.occurred_at, list(e.run_ids))
        return [Statement(_FINISHED, args)]

    @handles(JobRequeued)
    def job_requeued(self, e: JobRequeued, envelope: Envelope) -> list[Statement]:
        return [Statement(_REQUEUED, (e.job_id, e.attempt, e.reason, int(e.by_its_agent)))]

    @handles(JobCancelled)
    def job_cancelled(self, e: JobCancelled, envelope: Envelope) -> list[Statement]:
        return [Statement(_CANCELLED, (e.job_id, e.reason, envelope.occurred_at))]

    @handles(AgentHeartbeat)
    def agent_heartbeat(self, e: AgentHeartbeat, envelope: Envelope) -> list[Statement]:
        return [Statement(_HEARTBEAT, (e.agent_id, list(e.queues), list(e.running_jobs), envelope.occurred_at))]
