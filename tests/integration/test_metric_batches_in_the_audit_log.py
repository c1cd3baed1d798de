"""The audit log says which metrics a batch logged, at which steps and how many points, not their values: those are
on the log and in the run's history (kept in the audit log too, a training run made it as large as the log). An
audit log written before keeps its records, their values dropped by a migration, as a replay would write them now."""

from __future__ import annotations

from uuid import uuid4

import asyncpg

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.runs import MetricSeries, MetricsLogged, run_stream
from modelreg.projections.audit import AuditProjection
from modelreg.projections.migrations import migrate
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations

BATCH = MetricsLogged(
    entity="acme",
    project="nature",
    run_id="r1",
    series=(
        MetricSeries(key="loss", first_step=10, values=(0.5, 0.4, 0.3)),
        MetricSeries(key="val/acc", first_step=12, steps=(12, 20), values=(0.8, 0.9)),
    ),
)
AUDITED = {
    "entity": "acme",
    "project": "nature",
    "run_id": "r1",
    "series": [
        {"key": "loss", "first_step": 10, "last_step": 12, "points": 3},
        {"key": "val/acc", "first_step": 12, "last_step": 20, "points": 2},
    ],
}


def test_a_metric_batch_is_audited_by_its_metrics_steps_and_counts() -> None:
    assert BATCH.audit_dump() == AUDITED


async def test_metric_batches_audited_with_their_values_before_keep_only_steps_and_counts(database_url: str) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        compacted = [m for m in all_migrations() if m.component == "audit" and m.number == 6]
        await migrate(pool, [m for m in all_migrations() if m not in compacted])
        event = Envelope.new(BATCH, stream=run_stream("acme", "nature", "r1"), actor=Actor(kind="user", id="mia"))
        written_before = event.payload.public_dump()  # what the audit projection wrote until now
        await pool.execute(
            "INSERT INTO audit_log (event_id, type, stream, stream_seq, occurred_at, actor_kind, actor_id, "
            "correlation_id, payload) VALUES ($1, $2, $3, 1, now(), 'user', 'mia', $4, $5)",
            event.id,
            event.type,
            event.stream,
            uuid4(),
            written_before,  # the pool's codec writes it as jsonb
        )

        await migrate(pool, all_migrations())

        stored = await pool.fetchval("SELECT payload FROM audit_log WHERE event_id = $1", event.id)
        assert stored == AUDITED == AuditProjection().statements(event)[0].args[8]
    finally:
        await pool.close()
