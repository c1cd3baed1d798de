"""Projections' SQL against what Python says of the same event. The audit log's `scope` column
(AUDIT_SCOPE_V2) says what scope_of says of every event: the read filter of the audit log and that of live
events must never disagree about who reads an event. A label lineage builds fits the index that holds it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import pytest
from support.history import registry_history

from modelreg.events.artifacts import ArtifactVersionLogged
from modelreg.events.automations import AutomationCreated, AutomationFired
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.identity import RoleGranted
from modelreg.events.launch import JobOutputCaptured
from modelreg.events.runs import RunStarted
from modelreg.projections.audit import AuditProjection
from modelreg.projections.audit_queries import AuditQueries
from modelreg.projections.lineage import LineageProjection
from modelreg.projections.migrations import migrate
from modelreg.projections.readable import Readable, scope_of
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations

SOURCE = {"kind": "git", "git_remote": "https://example.com/x.git", "git_commit": "0" * 40, "entry_point": ["x"]}


def automation(trigger: dict, action: dict) -> AutomationCreated:
    return AutomationCreated.model_validate(
        {"automation_id": uuid4(), "name": "n", "trigger": trigger, "action": action}
    )


def launch(entity: str) -> dict:
    return {"kind": "launch", "queue": "cpu", "entity": entity, "project": "den", "source": SOURCE}


AUTOMATION_AND_LAUNCH_EVENTS: list[Event] = [
    automation({"event": "run_finished", "entity": "lynx"}, launch("acme")),
    automation({"event": "alias_added", "registered_model": "fraud"}, {"kind": "webhook", "url": "https://x.io"}),
    automation({"event": "run_finished"}, launch("lynx")),  # watches everything: where it launches
    automation({"event": "alias_added", "registered_model": "fraud"}, launch("lynx")),  # its config is lynx's too
    automation({"event": "run_finished"}, launch("${entity}")),  # a template: about no scope
    automation({"event": "run_finished"}, {"kind": "webhook", "url": "https://x.io"}),
    AutomationFired(automation_id=uuid4(), event_id=uuid4(), event_type="t", outcome="failed", scope="model:fraud"),
    JobOutputCaptured(job_id=uuid4(), attempt=1, stream="stdout", text="hi", scope="entity:lynx"),
    JobOutputCaptured(job_id=uuid4(), attempt=1, stream="stdout", text="hi"),  # written before v2
    RoleGranted(principal=Actor(kind="user", id="mo"), scope="entity:lynx", role="viewer"),
]


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    await migrate(pool, all_migrations())
    yield pool
    await pool.close()


async def _audited(pool: asyncpg.Pool, envelopes: list[Envelope]) -> None:
    projection = AuditProjection()
    async with pool.acquire() as conn, conn.transaction():
        for envelope in envelopes:
            for statement in projection.statements(envelope):
                await conn.execute(statement.sql, *statement.args)


async def test_the_audit_logs_scope_column_is_scope_of_for_every_kind_of_event(own_pool: asyncpg.Pool) -> None:
    actor = Actor(kind="user", id="ada")
    envelopes = registry_history(400, later_events=True) + [
        Envelope.new(payload, stream=f"thing:{n}", actor=actor)
        for n, payload in enumerate(AUTOMATION_AND_LAUNCH_EVENTS)
    ]
    await _audited(own_pool, envelopes)
    stored = {r["event_id"]: r["scope"] for r in await own_pool.fetch("SELECT event_id, scope FROM audit_log")}

    expected = {e.id: scope_of(e.payload.public_dump()) for e in envelopes}
    assert stored == expected
    assert {scope for scope in expected.values()} >= {"entity:lynx", "model:fraud", "entity:acme", None}


async def test_the_audit_logs_read_filter_reads_what_live_events_read_of_every_kind_of_event(
    own_pool: asyncpg.Pool,
) -> None:
    actor = Actor(kind="user", id="ada")
    envelopes = [
        Envelope.new(payload, stream=f"thing:{n}", actor=actor)
        for n, payload in enumerate(AUTOMATION_AND_LAUNCH_EVENTS)
    ]
    await _audited(own_pool, envelopes)
    audit = AuditQueries(own_pool)
    read: dict[str, set[UUID]] = {}
    for hidden in ("entity:lynx", "entity:acme", "model:fraud"):
        readable = Readable.of(admin=False, grants={}, private=[hidden])
        rows = await audit.audit_page(
            actor=None,
            stream=None,
            action=None,
            since=None,
            until=None,
            before=None,
            limit=100,
            hidden_scopes=readable.hidden_scopes(),
            identity_streams=readable.identity_streams_read(),
        )
        read[hidden] = {row["event_id"] for row in rows}
        assert read[hidden] == {e.id for e in envelopes if readable.event(e)}, hidden
    watching_fraud_launching_in_lynx = envelopes[3].id
    assert watching_fraud_launching_in_lynx not in read["entity:lynx"] | read["model:fraud"]
    assert watching_fraud_launching_in_lynx in read["entity:acme"]


async def test_a_version_logged_by_a_run_with_many_long_aliases_applies_to_lineage(own_pool: asyncpg.Pool) -> None:
    """Its label (searched, also in the downstream edges' index rows) is cut short rather than over the ~2.7 KB
    an index row holds, which parked the collection's stream."""
    rng = random.Random(7)
    aliases = tuple(f"a{n:02d}" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=57)) for n in range(60))
    logged = ArtifactVersionLogged(
        artifact_version_id=uuid4(),
        entity="acme",
        project="nature",
        name="weights",
        artifact_type="model",
        digest="sha256:" + "0" * 64,
        manifest=(),
        aliases=aliases,
        logged_by_run="r1",
    )
    projection = LineageProjection()
    async with own_pool.acquire() as conn, conn.transaction():
        for payload in (RunStarted(entity="acme", project="nature", run_id="r1"), logged):
            for statement in projection.statements(Envelope.new(payload, stream="s", actor=Actor(kind="user", id="a"))):
                await conn.execute(statement.sql, *statement.args)
    label = await own_pool.fetchval("SELECT target_label FROM lineage_edges WHERE kind = 'produced'")
    assert label.startswith("weights:v0\na00") and len(label) < 1100  # 3.7 KB of aliases, hard to compress
