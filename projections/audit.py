"""The audit read model: every action is an audit record (who, when, what, on which stream); a run's heartbeat,
nobody's action, is not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelreg.events.envelope import Envelope
from modelreg.events.launch import AgentHeartbeat
from modelreg.events.runs import RunHeartbeat
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import CopyInto, Projection, Statement
from modelreg.projections.readable import AUDIT_SCOPE_V1, AUDIT_SCOPE_V2

SCHEMA_V1 = """
CREATE TABLE audit_log (
    event_id uuid PRIMARY KEY,
    type text NOT NULL,
    stream text NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor_kind text NOT NULL,
    actor_id text NOT NULL,
    correlation_id uuid NOT NULL,
    causation_id uuid,
    payload jsonb NOT NULL
);
CREATE INDEX audit_log_by_stream ON audit_log (stream, occurred_at);
CREATE INDEX audit_log_by_actor ON audit_log (actor_kind, actor_id, occurred_at);
CREATE INDEX audit_log_by_time ON audit_log (occurred_at);
"""

# A stream's records are numbered in log order: that, not the clock, is the order things happened to
# one model (two commands accepted a moment apart may reach the log the other way round).
SCHEMA_V2 = """
ALTER TABLE audit_log ADD COLUMN stream_seq bigint;
UPDATE audit_log a SET stream_seq = n.seq
FROM (SELECT event_id, row_number() OVER (PARTITION BY stream ORDER BY occurred_at, event_id) - 1 AS seq
      FROM audit_log) n
WHERE a.event_id = n.event_id;
ALTER TABLE audit_log ALTER COLUMN stream_seq SET NOT NULL;
CREATE UNIQUE INDEX audit_log_by_stream_seq ON audit_log (stream, stream_seq);
DROP INDEX audit_log_by_stream;
"""

# A command recorded offline carries its client id as the causation id of its events; sending it again
# must find it (services/commands/handlers.py, idempotent sync).
SCHEMA_V3 = """
CREATE INDEX audit_log_by_causation ON audit_log (causation_id) WHERE causation_id IS NOT NULL;
"""

# The audit log is served to every role: what the API never serves stays out of it.
SCHEMA_V4 = """
UPDATE audit_log SET payload = payload - 'key_sha256' WHERE type = 'identity.api_key_issued';
"""

# occurred_at is the server's time of receipt (what filters go by); an offline run's claim is kept beside it.
SCHEMA_V5 = """
ALTER TABLE audit_log ADD COLUMN recorded_offline_at timestamptz;
"""

# A metric batch's record says which metrics, steps and how many points (MetricsLogged.audit_dump), not its values:
# a training run's batches made the audit log as large as the log itself.
SCHEMA_V6 = """
UPDATE audit_log SET payload = jsonb_build_object(
    'entity', payload->'entity', 'project', payload->'project', 'run_id', payload->'run_id',
    'series', (
        SELECT jsonb_agg(jsonb_build_object(
            'key', s->'key',
            'first_step', s->'first_step',
            'last_step', CASE WHEN jsonb_typeof(s->'steps') = 'array' THEN s->'steps'->-1
                              ELSE to_jsonb((s->>'first_step')::bigint + jsonb_array_length(s->'values') - 1) END,
            'points', jsonb_array_length(s->'values')) ORDER BY n)
        FROM jsonb_array_elements(payload->'series') WITH ORDINALITY AS e(s, n)))
WHERE type = 'runs.metrics_logged' AND jsonb_typeof(payload->'series') = 'array'
  AND jsonb_typeof(payload->'series'->0->'values') = 'array';
"""

_RECORDED = """
INSERT INTO audit_log (event_id, type, stream, occurred_at, actor_kind, actor_id, correlation_id, causation_id, payload,
                       stream_seq, recorded_offline_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
        (SELECT coalesce(max(stream_seq) + 1, 0) FROM audit_log WHERE stream = $3), $10)
ON CONFLICT (event_id) DO NOTHING
"""


_COLUMNS = (
    "event_id",
    "type",
    "stream",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "correlation_id",
    "causation_id",
    "payload",
    "recorded_offline_at",
    "stream_seq",
)
# A batch's records are copied in, each stream numbered on from its last stored record, read once per stream.
# An event recorded already (copied to the log again at another offset, by a mirror or a producer that is not
# ours) fails the copy; the batch is then applied event by event (projections/runtime.py), where `_RECORDED`
# passes over it.
_BATCH_COPIED = CopyInto("audit_log", _COLUMNS)
_LAST_SEQ = """
SELECT s.stream, coalesce((SELECT max(stream_seq) FROM audit_log a WHERE a.stream = s.stream), -1) AS seq
FROM unnest($1::text[]) AS s(stream)
"""


# A heartbeat says a process is alive; it is nobody's action. A quiet run's beats would bury its history (the run
# page reads its stream's newest records), and an agent's, every 2 s, would make most of the table. Both stay on
# the log, for the registry and the Launch read model.
NOT_ACTIONS = frozenset({RunHeartbeat.type, AgentHeartbeat.type})


class AuditProjection(Projection):
    """Not one method per type: every event type, present and future, is recorded the same way (but NOT_ACTIONS)."""

    name = "audit"
    tables = ("audit_log",)
    migrations = (
        Migration("audit", 1, SCHEMA_V1),
        Migration("audit", 2, SCHEMA_V2, rewrites="numbers each stream's audit entries"),
        Migration("audit", 3, SCHEMA_V3),
        Migration("audit", 4, SCHEMA_V4, rewrites="removes key digests from the audit log"),
        Migration("audit", 5, SCHEMA_V5),
        Migration("audit", 6, SCHEMA_V6, rewrites="keeps each metric batch's steps and counts, not its values"),
        # Which entity or model each record is about, for the read filter (projections/readable.py).
        Migration("audit_scope", 1, AUDIT_SCOPE_V1),
        Migration("audit_scope", 2, AUDIT_SCOPE_V2),
    )

    def __init__(self) -> None:
        super().__init__()
        # Per stream of the batch about to be applied, its last stored stream_seq (-1: none yet); None: not read.
        self._last_seq: dict[str, int] | None = None

    def handled_types(self) -> set[str]:
        return {"*"}

    async def prepare(self, conn: Any, events: Sequence[Envelope] = ()) -> None:
        self._last_seq = None
        if len(events) > 1:
            streams = list(dict.fromkeys(event.stream for event in events))
            self._last_seq = {row["stream"]: row["seq"] for row in await conn.fetch(_LAST_SEQ, streams)}

    def batch_statements(self, events: Sequence[Envelope]) -> list[tuple[str, Statement]]:
        last_seq, self._last_seq = self._last_seq, None  # read for this batch only
        if last_seq is None:
            return super().batch_statements(events)
        statements = []
        for event in events:
            if event.type in NOT_ACTIONS:
                continue
            seq = last_seq[event.stream] = last_seq[event.stream] + 1
            statements.append((event.stream, Statement(_BATCH_COPIED, (*_record(event), seq))))
        return statements

    def statements(self, event: Envelope) -> list[Statement]:
        return [] if event.type in NOT_ACTIONS else [Statement(_RECORDED, _record(event))]


def _record(event: Envelope) -> tuple[Any, ...]:
    """An audit record's columns but its stream_seq, in the order of `_RECORDED`'s arguments and `_COLUMNS`."""
    return (
        event.id,
        event.type,
        event.stream,
        event.occurred_at,
        event.actor.kind,
        event.actor.id,
        event.correlation_id,
        event.causation_id,
        event.payload.audit_dump(),
        event.recorded_offline_at,
    )
