"""What a live subscriber asked for, and what it gets: filters on event type and scope."""

from __future__ import annotations

import uuid

import pytest

from modelreg.errors import InvalidInput
from modelreg.events.artifacts import ArtifactVersionUsed, artifact_stream
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.filters import EventFilter
from modelreg.events.registry import AliasAdded, VersionLinked, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.services.http.graphql_websocket import api_key_of_connection

ALICE = Actor(kind="user", id="alice")
VERSION = uuid.uuid4()


def _event(payload: Event, stream: str) -> Envelope:
    return Envelope.new(payload, stream=stream, actor=ALICE)


LINKED = _event(
    VersionLinked(registered_model="nature", artifact_version_id=VERSION), registered_model_stream("nature")
)
MOVED = _event(
    AliasAdded(registered_model="nature", artifact_version_id=VERSION, alias="production"),
    registered_model_stream("nature"),
)
ELSEWHERE = _event(
    VersionLinked(registered_model="other", artifact_version_id=VERSION), registered_model_stream("other")
)
STARTED = _event(RunStarted(entity="acme", project="nature", run_id="r1"), run_stream("acme", "nature", "r1"))
USED = _event(
    ArtifactVersionUsed(artifact_version_id=VERSION, entity="globex", project="p", run_id="r2"),
    artifact_stream("globex", "p", "data"),
)
ALL = [LINKED, MOVED, ELSEWHERE, STARTED, USED]


def _kept(event_filter: EventFilter) -> list[Envelope]:
    return [e for e in ALL if event_filter.matches(e)]


def test_no_condition_lets_everything_through() -> None:
    assert _kept(EventFilter.of()) == ALL


def test_conditions_on_type_and_scope_must_all_hold() -> None:
    assert _kept(EventFilter.of(types=["registry.version_linked"])) == [LINKED, ELSEWHERE]
    assert _kept(EventFilter.of(registered_model="nature")) == [LINKED, MOVED]
    assert _kept(EventFilter.of(types=["registry.version_linked"], registered_model="nature")) == [LINKED]
    assert _kept(EventFilter.of(entity="acme")) == [STARTED]
    assert _kept(EventFilter.of(stream_prefix="registered_model:")) == [LINKED, MOVED, ELSEWHERE]
    assert _kept(EventFilter.of(types=[])) == []  # asked for no type: gets none


def test_a_misspelt_event_type_is_refused_rather_than_never_matching() -> None:
    with pytest.raises(InvalidInput, match="unknown event type.*registry.version_linkd"):
        EventFilter.of(types=["registry.version_linkd"])


def test_a_socket_presents_its_key_in_the_connection_init_payload() -> None:
    assert api_key_of_connection({"Authorization": "Bearer mr_abc"}) == "mr_abc"
    assert api_key_of_connection({"authorization": "bearer  mr_abc "}) == "mr_abc"
    assert api_key_of_connection({"apiKey": "mr_abc"}) == "mr_abc"
    for nothing in (None, {}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"apiKey": 3}):
        assert api_key_of_connection(nothing) is None
