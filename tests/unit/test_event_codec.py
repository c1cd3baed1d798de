"""Events are immutable facts with a type and a schema version, and only well-formed ones decode."""

from __future__ import annotations

import pickle
from uuid import uuid4

import orjson
import pytest
from pydantic import ValidationError
from support.history import registry_history

from modelreg.events import catalog, codec
from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry
from modelreg.events.automations import AutomationCreated, LaunchAction, TriggerSpec
from modelreg.events.codec import UndecodableEvent, decode, encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.launch import JobEnqueued, JobRequeued, JobSource
from modelreg.events.registry import AliasAdded
from modelreg.events.runs import RunStarted

ALICE = Actor(kind="user", id="alice")
DIGEST = "sha256:" + "ab" * 32


def logged() -> Envelope:
    payload = ArtifactVersionLogged(
        artifact_version_id=uuid4(),
        entity="acme",
        project="nature",
        name="classifier",
        artifact_type="model",
        digest=DIGEST,
        manifest=(ManifestEntry(path="weights/model.bin", size=3, digest=DIGEST),),
        metadata={"accuracy": 0.93},
    )
    return Envelope.new(payload, stream="artifact:acme/nature/classifier", actor=ALICE)


def test_an_event_survives_the_wire_unchanged() -> None:
    event = logged()
    assert decode(encode(event)) == event


def test_the_envelope_carries_type_version_actor_and_a_time_ordered_id() -> None:
    first, second = logged(), logged()
    wire = orjson.loads(encode(first))
    assert wire["type"] == "artifacts.version_logged"
    assert wire["version"] == 2  # v2: manifest entries may be references
    assert wire["actor"] == {"kind": "user", "id": "alice"}
    assert wire["correlation_id"] == wire["id"]  # a command's first event starts its own correlation
    assert first.id.version == 7 and first.id < second.id


def test_events_are_frozen() -> None:
    event = logged()
    with pytest.raises(ValidationError):
        event.stream = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x00\x01garbage", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "runs.run_started"}', "missing or mistyped"),
        (b'{"type": ["runs.run_started"], "version": 2, "payload": {}}', "missing or mistyped"),
        (b'{"type": {}, "version": 1, "payload": {}, "stream": "s"}', "missing or mistyped"),
        (b'{"type": "nope.happened", "version": 1, "payload": {}}', "unknown event type"),
        (b'{"type": "runs.run_started", "version": 9, "payload": {}}', "newer modelreg"),
    ],
)
def test_what_is_not_an_event_we_can_read_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UndecodableEvent, match=reason):
        decode(data)


def test_a_payload_that_breaks_its_schema_is_undecodable() -> None:
    wire = orjson.loads(encode(logged()))
    wire["payload"]["digest"] = "md5:0"
    with pytest.raises(UndecodableEvent, match="does not match its schema"):
        decode(orjson.dumps(wire))


def test_an_old_schema_version_is_upcast_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    class RunStartedV3(RunStarted):
        version = 3
        owner: str

    monkeypatch.setitem(catalog.EVENT_TYPES, RunStarted.type, RunStartedV3)
    monkeypatch.setitem(catalog.UPCASTERS, (RunStarted.type, 2), lambda p: {**p, "owner": "unknown"})
    v2 = Envelope.new(
        RunStarted(entity="acme", project="nature", run_id="r1"), stream="run:acme/nature/r1", actor=ALICE
    )

    upcast = decode(encode(v2))

    assert upcast.version == 3
    assert upcast.payload.owner == "unknown"  # type: ignore[attr-defined]


def test_a_run_started_before_tags_existed_reads_with_none() -> None:
    v1 = Envelope.new(
        RunStarted(entity="acme", project="nature", run_id="r1", name="first"), stream="run:acme/nature/r1", actor=ALICE
    )
    written = orjson.loads(encode(v1))
    written["version"] = 1
    for added in ("notes", "tags", "group"):
        written["payload"].pop(added)

    read = decode(orjson.dumps(written))

    assert read.version == 2
    assert (read.payload.name, read.payload.tags, read.payload.notes) == ("first", (), None)  # type: ignore[attr-defined]


def _written_as(event: Envelope, version: int, *, without: tuple[str, ...]) -> bytes:
    written = orjson.loads(encode(event))
    written["version"] = version
    for added in without:
        written["payload"].pop(added)
    return orjson.dumps(written)


def test_launch_events_written_before_time_limits_and_given_back_jobs_read_as_they_meant() -> None:
    source = JobSource(kind="image", image="python:3.12", entry_point=("train",))
    job = uuid4()
    enqueued = JobEnqueued(job_id=job, queue="cpu", entity="acme", project="nature", source=source)
    read = decode(
        _written_as(Envelope.new(enqueued, stream="job", actor=ALICE), 1, without=("time_limit_s", "retry_of"))
    )
    assert (read.version, read.payload.time_limit_s, read.payload.retry_of) == (2, None, None)  # type: ignore[attr-defined]

    requeued = JobRequeued(job_id=job, attempt=1, reason="agent vanished")
    read = decode(_written_as(Envelope.new(requeued, stream="job", actor=ALICE), 2, without=("by_its_agent",)))
    assert (read.version, read.payload.by_its_agent) == (3, False)  # type: ignore[attr-defined]

    launch = LaunchAction(queue="cpu", entity="acme", project="nature", source=source)
    created = AutomationCreated(
        automation_id=uuid4(), name="a", trigger=TriggerSpec(event="run_finished"), action=launch
    )
    written = orjson.loads(encode(Envelope.new(created, stream="automation", actor=ALICE)))
    written["version"] = 1
    written["payload"]["action"].pop("time_limit_s")
    read = decode(orjson.dumps(written))
    assert (read.version, read.payload.action.time_limit_s) == (2, None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["../secrets", "/etc/passwd", "a/../../b", "a//b", "a\\b", "./a"])
def test_artifact_file_paths_cannot_escape_the_artifact(path: str) -> None:
    with pytest.raises(ValidationError, match="must be relative|must stay inside the artifact|holds a backslash"):
        ManifestEntry(path=path, size=1, digest=DIGEST)


@pytest.mark.parametrize("alias", ["latest", "v3", "", "has space", "a/b"])
def test_aliases_the_registry_computes_or_cannot_parse_are_refused(alias: str) -> None:
    with pytest.raises(ValidationError):
        AliasAdded(registered_model="m", artifact_version_id=uuid4(), alias=alias)


def test_a_record_at_its_current_version_decodes_the_same_on_the_short_path_as_on_the_general_one() -> None:
    # Records at their type's current version are validated as one typed envelope (codec.py); what comes out
    # must be the Envelope the two-step path builds, down to its class and the fields it says were set.
    history = registry_history(400, seed=5, later_events=True)
    assert len({event.type for event in history}) > 15
    for event in history:
        data = encode(event)
        short, general = decode(data), codec._in_two_steps(orjson.loads(data))
        assert type(short) is Envelope and short == general == event
        assert short.model_fields_set == general.model_fields_set
        assert type(short.payload) is type(event.payload)
        assert pickle.loads(pickle.dumps(short)) == event


def _record_of(type_tag: str, version: int, payload: dict) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid4()),
            "type": type_tag,
            "version": version,
            "stream": "run:acme/nature/r1",
            "occurred_at": "2026-01-01T00:00:00+00:00",
            "actor": {"kind": "user", "id": "alice"},
            "correlation_id": str(uuid4()),
            "payload": payload,
        }
    )


@pytest.mark.parametrize(
    "type_tag, version, payload",
    [
        ("automations.automation_created", 1, {}),  # its upcaster reads the action it has not got
        ("automations.automation_created", 1, {"action": 5}),
        ("runs.metrics_logged", 1, {"rows": 5}),
        ("runs.metrics_logged", 1, {"rows": [1]}),
        ("runs.metrics_logged", 1, {"rows": [{"step": "a", "values": {"x": 1}}, {"step": "b", "values": {"x": 1}}]}),
        ("artifacts.version_logged", 1, {"manifest": 5}),
        ("artifacts.version_logged", 1, {"manifest": [1]}),
        ("launch.queue_created", 2, {"queue": "q", "entities": 5}),  # a validator that iterates the entities
    ],
)
def test_a_malformed_record_that_an_upcaster_or_a_validator_cannot_read_is_refused_with_a_reason(
    type_tag: str, version: int, payload: dict
) -> None:
    # Raised as KeyError or TypeError, it stopped the process's log reader at this record on every restart.
    with pytest.raises(UndecodableEvent, match="does not match its schema"):
        decode(_record_of(type_tag, version, payload))


@pytest.mark.parametrize("escape", [b"\\u0000", b"\\ud800"])
def test_a_record_nested_deeper_than_any_event_is_refused_even_with_text_that_must_be_replaced(escape: bytes) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    with pytest.raises(UndecodableEvent, match="nested deeper"):
        decode(
            b'{"type": "runs.run_started", "version": 2, "stream": "s", "note": "' + escape + b'", "x": ' + deep + b"}"
        )
