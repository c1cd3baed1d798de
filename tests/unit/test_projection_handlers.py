"""Projection handlers are pure: one event in, SQL statements out, and nothing for events they ignore."""

from __future__ import annotations

from support.history import registry_history

from modelreg.events.catalog import EVENT_TYPES
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import ApiKeyRevoked, principal_stream
from modelreg.events.operations import EventSkipped
from modelreg.events.runs import RunAlerted
from modelreg.projections.audit import AuditProjection
from modelreg.projections.identity import IdentityProjection
from modelreg.projections.registry import RegistryProjection
from modelreg.services.projections_catalog import PROJECTIONS


def test_every_event_type_of_the_catalog_has_a_projection_that_handles_it() -> None:
    specific = [cls() for name, cls in PROJECTIONS.items() if name != "audit"]  # audit takes every type
    handled = set().union(*(projection.handled_types() for projection in specific))
    # The runtime reads skips, for every projection; an alert is an audit record and a live event, nothing more.
    assert handled | {EventSkipped.type, RunAlerted.type} == set(EVENT_TYPES)


def test_handlers_are_deterministic_for_the_same_event() -> None:
    projection = RegistryProjection()
    for event in registry_history(200):
        assert projection.statements(event) == projection.statements(event)


def test_handlers_store_the_event_time_never_the_clock() -> None:
    for event in registry_history(200):
        for statement in RegistryProjection().statements(event):
            assert "now()" not in statement.sql.lower()


def test_the_audit_projection_records_every_event_with_its_actor() -> None:
    for event in registry_history(50):
        (statement,) = AuditProjection().statements(event)
        assert statement.args[0] == event.id
        assert statement.args[4:6] == (event.actor.kind, event.actor.id)


def test_a_revoked_key_records_when_and_by_whom() -> None:
    zoe = Actor(kind="user", id="zoe")
    revoked = Envelope.new(
        ApiKeyRevoked(key_id="0123456789ab", principal=zoe),
        stream=principal_stream(zoe),
        actor=Actor(kind="user", id="ada"),
    )
    (statement,) = IdentityProjection().statements(revoked)
    assert statement.args == ("0123456789ab", revoked.occurred_at, "user:ada")
