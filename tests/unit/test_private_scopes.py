"""Private entities and models: who reads them, who writes in them, what a limited key may do, and how a live
subscriber's view follows visibility changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson
import pytest

from modelreg.errors import PermissionDenied
from modelreg.events.automations import AutomationCreated, AutomationFired, watched_scope
from modelreg.events.codec import decode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    RoleGranted,
    ScopeMadePrivate,
    ScopeMadePublic,
    principal_stream,
    visibility_stream,
)
from modelreg.events.log import LogPosition
from modelreg.events.registry import AliasAdded, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.graphql.live_readable import LiveReadable
from modelreg.projections.readable import Readable, scope_of
from modelreg.services.commands.access import Caller, entity_scopes, model_scopes, queue_scope

MIA = Actor(kind="user", id="mia")
ADMIN = Actor(kind="user", id="admin")
PRIVATE = frozenset({"entity:lynx", "model:fraud"})
SOURCE = {"kind": "git", "git_remote": "https://git.example.com/acme/eval.git", "entry_point": ["python", "eval.py"]}


def test_nothing_is_hidden_from_anyone_in_an_installation_that_marks_nothing_private() -> None:
    assert Caller(MIA, "viewer").readable().hides_nothing
    assert Caller(MIA, "member", {"entity:acme": "admin"}).readable().hides_nothing


def test_a_private_entity_is_hidden_from_a_key_without_a_grant_there_whatever_its_role() -> None:
    readable = Caller(MIA, "member", private=PRIVATE).readable()
    assert not readable.entity("lynx") and not readable.model("fraud")
    assert readable.entity("acme") and readable.model("nature")
    assert readable.hidden_scopes() == ["entity:lynx", "model:fraud"]


def test_a_viewer_grant_on_a_private_scope_lets_its_holder_read_it() -> None:
    readable = Caller(MIA, "viewer", {"entity:lynx": "viewer"}, private=PRIVATE).readable()
    assert readable.entity("lynx") and not readable.model("fraud")


def test_a_grant_on_the_registry_reads_every_private_model_but_no_private_entity() -> None:
    readable = Caller(MIA, "viewer", {"registry": "viewer"}, private=PRIVATE).readable()
    assert readable.model("fraud") and not readable.entity("lynx")


def test_an_admin_key_reads_everything_private() -> None:
    assert Caller(ADMIN, "admin", private=PRIVATE).readable().hides_nothing


def test_a_keys_own_role_does_not_hold_in_a_private_scope_a_grant_does() -> None:
    outsider = Caller(MIA, "member", private=PRIVATE)
    assert outsider.role_on(entity_scopes("lynx")) == "none"
    assert outsider.role_on(entity_scopes("acme")) == "member"
    with pytest.raises(PermissionDenied) as refused:
        outsider.require("viewer", entity_scopes("lynx"), "linking a version of lynx")
    assert "entity:lynx is private and user:mia holds no role there" in refused.value.message
    member = Caller(MIA, "viewer", {"entity:lynx": "member"}, private=PRIVATE)
    assert member.role_on(entity_scopes("lynx")) == "member"


def test_a_key_limited_to_one_model_writes_there_only_and_reads_no_private_scope_outside_it() -> None:
    ci = Caller(MIA, "member", {"entity:lynx": "admin"}, private=PRIVATE, limits=("model:nature",))
    assert ci.role_on(model_scopes("nature")) == "member"
    assert ci.role_on(model_scopes("other")) == "viewer"
    assert ci.role_on(entity_scopes("lynx")) == "none"  # granted to its principal, but outside the key's limits
    with pytest.raises(PermissionDenied) as refused:
        ci.require("member", entity_scopes("acme"), "start run")
    assert "limited to model:nature" in refused.value.message
    readable = ci.readable()
    assert not readable.entity("lynx") and readable.entity("acme")


def test_an_events_scope_is_its_model_else_its_entity_else_the_scope_it_names() -> None:
    assert scope_of({"registered_model": "fraud", "entity": "x"}) == "model:fraud"
    assert scope_of({"entity": "lynx", "project": "p"}) == "entity:lynx"
    assert scope_of({"principal": {}, "scope": "entity:lynx", "role": "viewer"}) == "entity:lynx"
    assert scope_of({"principal": {}, "scope": "registry", "role": "viewer"}) is None
    assert scope_of({"trigger": {"entity": "lynx"}, "action": {}}) == "entity:lynx"
    assert scope_of({"key_id": "x"}) is None


def test_an_automation_is_read_by_who_reads_what_it_watches_and_where_it_launches() -> None:
    readable = Readable(frozenset({"lynx"}), frozenset())
    assert not readable.automation({"entity": "lynx"}, {"kind": "webhook"})
    assert not readable.automation({"entity": "acme"}, {"kind": "launch", "entity": "lynx"})
    assert readable.automation({"entity": "acme"}, {"kind": "launch", "entity": "${entity}"})


def _event(payload: object, stream: str) -> Envelope:
    return Envelope.new(payload, stream=stream, actor=ADMIN)  # type: ignore[arg-type]


def at(offset: int) -> LogPosition:
    return LogPosition("modelreg.events", 0, offset)


def test_a_live_subscriber_stops_seeing_an_entity_the_moment_it_is_made_private_and_sees_it_once_granted() -> None:
    live = LiveReadable(Caller(MIA, "member"), reflected={0: 10})  # the read model showed offsets 0 to 9
    run = RunStarted(entity="lynx", project="p", run_id="r1")
    assert live.sees(_event(run, run_stream("lynx", "p", "r1")), at(10))
    assert not live.sees(_event(ScopeMadePrivate(scope="entity:lynx"), visibility_stream("entity:lynx")), at(11))
    assert not live.sees(_event(run, run_stream("lynx", "p", "r2")), at(12))
    granted = RoleGranted(principal=MIA, scope="entity:lynx", role="viewer")
    assert live.sees(_event(granted, "principal:user:mia"), at(13))
    assert live.sees(_event(run, run_stream("lynx", "p", "r3")), at(14))


def test_a_change_received_before_the_subscription_but_logged_after_its_lookup_still_applies() -> None:
    """Made private while the subscription started: received first, on the log after the read model was read."""
    live = LiveReadable(Caller(MIA, "member"), reflected={0: 10})
    made_private = _event(ScopeMadePrivate(scope="entity:lynx"), visibility_stream("entity:lynx"))
    made_private = made_private.model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(seconds=1)})
    assert not live.sees(made_private, at(10))
    assert not live.sees(
        _event(RunStarted(entity="lynx", project="p", run_id="r1"), run_stream("lynx", "p", "r1")), at(11)
    )


def test_a_replayed_visibility_change_the_read_model_showed_changes_nothing() -> None:
    live = LiveReadable(Caller(MIA, "member", private=frozenset({"model:fraud"})), reflected={0: 10})
    assert not live.sees(_event(ScopeMadePublic(scope="model:fraud"), visibility_stream("model:fraud")), at(3))
    alias = AliasAdded(registered_model="fraud", artifact_version_id="0" * 32, alias="production")  # type: ignore[arg-type]
    assert not live.sees(_event(alias, registered_model_stream("fraud")), at(4))


def test_an_agent_key_limited_to_its_queue_works_jobs_there_and_nowhere_else() -> None:
    agent = Caller(Actor(kind="service", id="gpu-pool"), "member", limits=("queue:gpu",))
    assert agent.role_on((*entity_scopes("acme"), queue_scope("gpu"))) == "member"
    assert agent.role_on((*entity_scopes("acme"), queue_scope("cpu"))) == "viewer"
    with pytest.raises(PermissionDenied) as refused:
        agent.require("member", (*entity_scopes("acme"), queue_scope("cpu")), "claim job")
    assert "limited to queue:gpu" in refused.value.message


def test_an_automations_own_events_are_read_under_what_it_watches_else_where_it_launches() -> None:
    assert watched_scope({"registered_model": "fraud", "entity": "x"}, {"kind": "webhook"}) == "model:fraud"
    assert watched_scope({"entity": "lynx"}, {"kind": "launch", "entity": "acme"}) == "entity:lynx"
    assert watched_scope({"event": "run_finished"}, {"kind": "launch", "entity": "lynx"}) == "entity:lynx"
    assert watched_scope({"event": "run_finished"}, {"kind": "launch", "entity": "${entity}"}) is None
    fired = AutomationFired(
        automation_id=uuid4(), event_id=uuid4(), event_type="runs.run_finished", outcome="enqueued", scope="entity:lynx"
    )
    assert not Readable(frozenset({"lynx"}), frozenset()).event(Envelope.new(fired, stream="automation:x", actor=ADMIN))


def test_an_automation_watching_a_public_model_and_launching_into_a_private_team_is_created_out_of_sight() -> None:
    """Its creation carries the job's config (a password, say): that team's, as the automation itself is."""
    launch = {"kind": "launch", "queue": "gpu", "entity": "lynx", "project": "den", "source": SOURCE}
    created = AutomationCreated(
        automation_id=uuid4(),
        name="eval on staging",
        trigger={"event": "alias_added", "registered_model": "nature"},  # type: ignore[arg-type]
        action={**launch, "config": {"db_password": "hunter2"}},  # type: ignore[arg-type]
    )
    outsider, lynx_viewer = Readable(frozenset({"lynx"}), frozenset()), Readable()
    envelope = Envelope.new(created, stream="automation:x", actor=ADMIN)
    assert scope_of(created.public_dump()) == "model:nature" and not outsider.event(envelope)
    assert lynx_viewer.event(envelope)
    templated = created.model_copy(update={"action": created.action.model_copy(update={"entity": "${entity}"})})
    assert outsider.event(Envelope.new(templated, stream="automation:x", actor=ADMIN))


def test_a_key_limited_to_a_private_scope_is_issued_out_of_sight_of_those_who_cannot_read_it() -> None:
    def issued(*scopes: str) -> Envelope:
        key = ApiKeyIssued(
            key_id="a" * 12, principal=Actor(kind="service", id="ci"), key_sha256="0" * 64, role="member", scopes=scopes
        )
        return Envelope.new(key, stream=principal_stream(key.principal), actor=ADMIN)

    outsider = Readable(frozenset({"lynx"}), frozenset({"fraud"}))
    assert outsider.event(issued()) and outsider.event(issued("model:nature", "registry"))
    assert not outsider.event(issued("model:nature", "entity:lynx")) and not outsider.event(issued("model:fraud"))


def test_identity_records_are_read_by_installation_admins_and_by_each_principal_on_its_own_stream() -> None:
    zoe = Actor(kind="user", id="zoe")
    issued = ApiKeyIssued(key_id="a" * 12, principal=zoe, key_sha256="0" * 64, role="admin", label="zoe's laptop")
    zoes_key = Envelope.new(issued, stream=principal_stream(zoe), actor=ADMIN)
    mias_grant = Envelope.new(
        RoleGranted(principal=MIA, scope="registry", role="viewer"), stream=principal_stream(MIA), actor=ADMIN
    )
    made_private = Envelope.new(
        ScopeMadePrivate(scope="entity:acme"), stream=visibility_stream("entity:acme"), actor=ADMIN
    )
    run = Envelope.new(
        RunStarted(entity="acme", project="yard", run_id="r1"), stream=run_stream("acme", "yard", "r1"), actor=MIA
    )

    admin = Caller(ADMIN, "admin").readable()
    mia = Caller(MIA, "member").readable()
    limited_admin = Caller(ADMIN, "admin", limits=("entity:acme",)).readable()  # no installation admin

    assert all(admin.event(e) for e in (zoes_key, mias_grant, made_private, run))
    assert mia.hides_nothing and mia.event(mias_grant) and mia.event(run)
    assert not mia.event(zoes_key) and not mia.event(made_private)
    assert not limited_admin.event(zoes_key) and not limited_admin.event(mias_grant)
    assert (admin.identity_streams_read(), mia.identity_streams_read()) == (None, ["principal:user:mia"])


def test_an_automation_event_written_before_events_said_their_scope_is_still_read() -> None:
    v1 = {
        "id": str(uuid4()),
        "type": AutomationFired.type,
        "version": 1,
        "stream": "automation:x",
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"kind": "automation", "id": "x"},
        "correlation_id": str(uuid4()),
        "payload": {"automation_id": str(uuid4()), "event_id": str(uuid4()), "event_type": "t", "outcome": "failed"},
    }
    decoded = decode(orjson.dumps(v1))
    assert isinstance(decoded.payload, AutomationFired) and decoded.payload.scope is None
    assert decoded.version == AutomationFired.version == 2
