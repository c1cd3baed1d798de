"""The audit read model: every event is an audit record (who, when, what, on which stream)."""

from __future__ import annotations

from modelreg.events.envelope import Envelope
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement

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

_RECORDED = """
INSERT INTO audit_log (event_id, type, stream, occurred_at, actor_kind, actor_id, correlation_id, causation_id, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (event_id) DO NOTHING
"""


class AuditProjection(Projection):
    """Not one method per type: every event type, present and future, is recorded the same way."""

    name = "audit"
    tables = ("audit_log",)
    migrations = (Migration("audit", 1, SCHEMA_V1),)

    def handled_types(self) -> set[str]:
        return {"*"}

    def statements(self, event: Envelope) -> list[Statement]:
        args = (
            event.id,
            event.type,
            event.stream,
            event.occurred_at,
            event.actor.kind,
            event.actor.id,
            event.correlation_id,
            event.causation_id,
            event.payload.model_dump(),
        )
        return [Statement(_RECORDED, args)]
