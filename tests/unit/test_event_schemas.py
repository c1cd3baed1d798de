"""Other services consume the topic with the exported JSON Schemas, not with our code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
from click.testing import CliRunner
from support.history import registry_history

from modelreg.events.catalog import EVENT_TYPES
from modelreg.events.codec import decode, encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    RoleGranted,
    RoleRevoked,
    ScopeMadePrivate,
    ScopeMadePublic,
    principal_stream,
    visibility_stream,
)
from modelreg.events.runs import RunStarted, RunSynced, run_stream
from modelreg.services.cli import main


def test_the_export_command_writes_one_schema_per_event_type(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{t}.v{c.version}.json" for t, c in EVENT_TYPES.items()
    )


def identity_events() -> list[Envelope]:
    admin = Actor(kind="user", id="admin")
    issued = ApiKeyIssued(key_id="0123456789ab", principal=admin, key_sha256="f" * 64, role="admin")
    ci_key = ApiKeyIssued(
        key_id="0123456789ac",
        principal=Actor(kind="service", id="ci"),
        key_sha256="e" * 64,
        role="member",
        scopes=("model:nature-classification",),
    )
    revoked = ApiKeyRevoked(key_id="0123456789ab", principal=admin)
    bob = Actor(kind="user", id="bob")
    granted = RoleGranted(principal=bob, scope="model:nature-classification", role="admin")
    taken_back = RoleRevoked(principal=bob, scope="model:nature-classification", role="admin")
    hidden, shown = ScopeMadePrivate(scope="entity:acme"), ScopeMadePublic(scope="entity:acme")
    return [
        *(
            Envelope.new(p, stream=principal_stream(admin), actor=admin)
            for p in (issued, ci_key, revoked, granted, taken_back)
        ),
        *(Envelope.new(p, stream=visibility_stream("entity:acme"), actor=admin) for p in (hidden, shown)),
    ]


def launch_and_automation_events() -> list[Envelope]:
    from uuid import uuid4

    from modelreg.events.automations import (
        AutomationChanged,
        AutomationCreated,
        AutomationDeleted,
        AutomationDisabled,
        AutomationEnabled,
        AutomationFired,
        FiringRetried,
        LaunchAction,
        TriggerSpec,
        WebhookAttempted,
        WebhookSecretRotated,
        automation_stream,
    )
    from modelreg.events.launch import (
        AgentHeartbeat,
        JobCancelled,
        JobClaimed,
        JobEnqueued,
        JobFinished,
        JobOutputCaptured,
        JobRequeued,
        JobSource,
        JobStarted,
        QueueCreated,
        QueueDeleted,
        QueueEntitiesSet,
        Trigger,
        agent_stream,
        job_stream,
        queue_stream,
    )

    ci = Actor(kind="service", id="ci")
    job, automation, event = uuid4(), uuid4(), uuid4()
    source = JobSource(
        kind="git", git_remote="https://example.com/r.git", git_commit="abc1234", entry_point=("python", "train.py")
    )
    on_job = [
        JobEnqueued(
            job_id=job,
            queue="cpu",
            entity="acme",
            project="nature",
            source=source,
            config={"lr": 0.1},
            triggered_by=Trigger(automation_id=automation, event_id=event, event_type="registry.alias_added"),
        ),
        JobClaimed(job_id=job, agent_id="a1", attempt=1),
        JobStarted(job_id=job, attempt=1, agent_id="a1", pid=42),
        JobOutputCaptured(job_id=job, attempt=1, stream="stdout", text="epoch 1\n"),
        JobRequeued(job_id=job, attempt=1, reason="agent a1 vanished"),
        JobFinished(job_id=job, attempt=2, state="finished", exit_code=0),
        JobCancelled(job_id=job),
    ]
    action = LaunchAction(queue="cpu", entity="acme", project="nature", source=source)
    on_automation = [
        AutomationCreated(
            automation_id=automation,
            name="retrain",
            trigger=TriggerSpec(event="artifact_version_logged"),
            action=action,
        ),
        AutomationDisabled(automation_id=automation),
        AutomationEnabled(automation_id=automation),
        AutomationChanged(
            automation_id=automation,
            name="retrain on new data",
            trigger=TriggerSpec(event="artifact_version_logged", collection="fresh-data"),
            action=action,
            cooldown_s=600,
        ),
        AutomationFired(
            automation_id=automation,
            event_id=event,
            event_type="artifacts.version_logged",
            outcome="enqueued",
            job_id=job,
        ),
        WebhookAttempted(
            automation_id=automation,
            event_id=event,
            attempt=1,
            url="https://example.com/hook",
            status_code=500,
            duration_ms=3.0,
        ),
        FiringRetried(automation_id=automation, event_id=event),
        WebhookSecretRotated(automation_id=automation, secret_generation=2, previous_signs_until=None),
        AutomationDeleted(automation_id=automation),
    ]
    return [
        Envelope.new(QueueCreated(queue="cpu", resource="local-process"), stream=queue_stream("cpu"), actor=ci),
        Envelope.new(QueueEntitiesSet(queue="cpu", entities=("acme",)), stream=queue_stream("cpu"), actor=ci),
        Envelope.new(QueueDeleted(queue="old-cpu"), stream=queue_stream("old-cpu"), actor=ci),
        Envelope.new(AgentHeartbeat(agent_id="a1", queues=("cpu",)), stream=agent_stream("a1"), actor=ci),
        *(Envelope.new(p, stream=job_stream(job), actor=ci) for p in on_job),
        *(Envelope.new(p, stream=automation_stream(automation), actor=ci) for p in on_automation),
    ]


def offline_events() -> list[Envelope]:
    alice = Actor(kind="user", id="alice")
    stream = run_stream("acme", "nature", "plane-1")
    started = RunStarted(entity="acme", project="nature", run_id="plane-1")
    synced = RunSynced(entity="acme", project="nature", run_id="plane-1", commands=9, recorded_on="laptop")
    return [
        Envelope.new(started, stream=stream, actor=alice, recorded_offline_at=datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        Envelope.new(synced, stream=stream, actor=alice),
    ]


def wandb_script_events() -> list[Envelope]:
    """What a W&B script's calls add: config and summary set after init, a rename, an alert, an artifact's
    save() and delete()."""
    from uuid import uuid4

    from modelreg.events.artifacts import ArtifactVersionDeleted, ArtifactVersionEdited, artifact_stream
    from modelreg.events.runs import (
        RunAlerted,
        RunConfigUpdated,
        RunDescribed,
        RunHeartbeat,
        RunResumed,
        RunSummaryUpdated,
    )

    alice = Actor(kind="user", id="alice")
    run = {"entity": "acme", "project": "nature", "run_id": "r1"}
    version = {"artifact_version_id": uuid4(), "entity": "acme", "project": "nature", "name": "images"}
    on_run = [
        RunConfigUpdated(**run, changes={"lr": 0.02}),
        RunSummaryUpdated(**run, changes={"best_acc": 0.93}),
        RunDescribed(**run, tags=("baseline",), notes="try a smaller lr"),
        RunAlerted(**run, title="accuracy dropped", text="0.4 < 0.5", level="WARN"),
        RunResumed(**run),
        RunHeartbeat(**run),
    ]
    on_artifact = [
        ArtifactVersionEdited(**version, description="cleaned", aliases_added=("best",)),
        ArtifactVersionDeleted(**version, aliases_removed=("best",)),
    ]
    return [
        *(Envelope.new(p, stream=run_stream("acme", "nature", "r1"), actor=alice) for p in on_run),
        *(Envelope.new(p, stream=artifact_stream("acme", "nature", "images"), actor=alice) for p in on_artifact),
    ]


def operations_events() -> list[Envelope]:
    from uuid import uuid4

    from modelreg.events.operations import EventSkipped, parked_stream_decisions

    admin = Actor(kind="user", id="admin")
    stream = "run:acme/nature/run-1"
    skipped = EventSkipped(projection="registry", stream=stream, event_id=uuid4(), reason="a bug in 0.3, fixed in 0.4")
    return [Envelope.new(skipped, stream=parked_stream_decisions("registry", stream), actor=admin)]


def test_exported_schemas_validate_real_serialized_events_and_reject_others(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    schemas = {p.name: jsonschema.Draft202012Validator(json.loads(p.read_text())) for p in tmp_path.iterdir()}
    seen = set()
    events = [
        *registry_history(3000),
        *identity_events(),
        *launch_and_automation_events(),
        *offline_events(),
        *wandb_script_events(),
    ]
    for event in [*events, *operations_events()]:
        wire = orjson.loads(encode(event))
        schemas[f"{event.type}.v{event.version}.json"].validate(wire)
        seen.add(event.type)
        other = next(s for name, s in schemas.items() if not name.startswith(event.type + "."))
        assert not other.is_valid(wire)
    assert seen == set(EVENT_TYPES)


def test_an_offline_runs_claimed_time_travels_beside_the_servers_and_online_events_are_written_as_before() -> None:
    claimed, online = offline_events()
    wire = orjson.loads(encode(claimed))
    assert (
        wire["recorded_offline_at"] == "2026-11-02T08:00:00+00:00"
        and wire["occurred_at"] != wire["recorded_offline_at"]
    )
    assert decode(encode(claimed)) == claimed
    # No field where there is no claim: a consumer's schemas from before it still accept online events.
    assert "recorded_offline_at" not in orjson.loads(encode(online))
    assert decode(encode(online)).recorded_offline_at is None
