"""One artifact version on the log twice (the same event copied at another offset by a mirror or a producer
that is not ours, or copies of one command accepted at the same moment) is one version: it takes one number
in the registry and in lineage, the audit log keeps each event once, and no stream is parked for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
from support.applied import applied

from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry, artifact_stream
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog
from modelreg.projections.audit import AuditProjection
from modelreg.projections.lineage import LineageProjection
from modelreg.projections.registry import RegistryProjection
from modelreg.services.settings import Settings

ALICE = Actor(kind="user", id="alice")
START = datetime(2026, 12, 1, tzinfo=UTC)


def logged(version_id: UUID, n: int) -> Envelope:
    digest = "sha256:" + f"{n:064x}"
    payload = ArtifactVersionLogged(
        artifact_version_id=version_id,
        entity="acme",
        project="nature",
        name="classifier",
        artifact_type="model",
        digest=digest,
        manifest=(ManifestEntry(path="model.pt", size=10, digest=digest),),
    )
    stream = artifact_stream("acme", "nature", "classifier")
    return Envelope.new(payload, stream=stream, actor=ALICE, occurred_at=START + timedelta(seconds=n))


async def project(settings: Settings, pool: asyncpg.Pool, log: EventLog) -> None:
    await applied(settings, pool, log, RegistryProjection(), LineageProjection(), AuditProjection())


@pytest.mark.parametrize("batches", ["one batch", "an event per batch"])
async def test_a_version_logged_again_takes_no_second_number_and_parks_nothing(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, batches: str
) -> None:
    first, then = uuid4(), uuid4()
    original = logged(first, 1)
    accepted_twice = logged(first, 1).model_copy(update={"occurred_at": START + timedelta(seconds=2)})
    history = [original, original, accepted_twice, logged(then, 3)]
    if batches == "one batch":
        await event_log.append(history)
        await project(settings, pool, event_log)
    else:
        for event in history:
            await event_log.append([event])
            await project(settings, pool, event_log)

    assert await pool.fetch("SELECT projection, stream, error FROM parked_streams") == []
    versions = await pool.fetch("SELECT id, version_index FROM artifact_versions ORDER BY version_index")
    assert [(r["id"], r["version_index"]) for r in versions] == [(first, 0), (then, 1)]
    labels = await pool.fetch("SELECT node, label FROM lineage_labels WHERE node LIKE 'artifact:%'")
    assert {r["node"]: r["label"] for r in labels} == {
        f"artifact:{first}": "classifier:v0",
        f"artifact:{then}": "classifier:v1",
    }
    recorded = await pool.fetch("SELECT event_id, stream_seq FROM audit_log ORDER BY stream_seq")
    assert [(r["event_id"], r["stream_seq"]) for r in recorded] == [
        (original.id, 0),
        (accepted_twice.id, 1),
        (history[3].id, 2),
    ]
