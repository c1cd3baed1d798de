"""Who may do what: a key's role holds everywhere, a grant on a scope overrides it there."""

from __future__ import annotations

import pytest

from modelreg.errors import PermissionDenied
from modelreg.events.envelope import Actor
from modelreg.services.commands.access import (
    Caller,
    automation_scopes,
    entity_scopes,
    model_scopes,
    require_own_agent,
    service_caller,
)

MIA = Actor(kind="user", id="mia")


def test_a_grant_on_a_model_wins_over_the_registry_and_the_keys_role() -> None:
    mia = Caller(MIA, "member", {"registry": "viewer", "model:fraud": "admin"})
    assert mia.role_on(model_scopes("fraud")) == "admin"
    assert mia.role_on(model_scopes("nature")) == "viewer"
    assert mia.role_on(entity_scopes("acme")) == "member"


def test_an_admin_key_is_admin_everywhere_whatever_it_was_granted() -> None:
    assert Caller(MIA, "admin", {"model:fraud": "viewer"}).role_on(model_scopes("fraud")) == "admin"


def test_a_refusal_says_who_holds_what_where_and_what_is_needed() -> None:
    with pytest.raises(PermissionDenied) as refused:
        Caller(MIA, "viewer").require("member", model_scopes("fraud"), "add alias")
    assert "user:mia is a viewer of model:fraud; add alias needs member" in refused.value.message


def test_a_refusal_on_the_installation_says_to_ask_for_a_key_since_no_grant_reaches_there() -> None:
    with pytest.raises(PermissionDenied) as refused:
        Caller(MIA, "member", {"registry": "admin"}).require("admin", (), "listing principals")
    assert "user:mia is a member of this installation; listing principals needs admin" in refused.value.message
    assert "issueApiKey" in refused.value.message and "grantRole" not in refused.value.message


def test_uploading_files_needs_member_on_some_scope() -> None:
    assert not Caller(MIA, "viewer").writes_somewhere()
    assert not Caller(MIA, "viewer", {"entity:acme": "viewer"}).writes_somewhere()
    assert Caller(MIA, "viewer", {"entity:acme": "member"}).writes_somewhere()
    assert Caller(MIA, "member").writes_somewhere()


def test_an_agent_id_belongs_to_the_principal_of_the_key_that_sends_it() -> None:
    ci = Caller(Actor(kind="service", id="ci"), "admin", key_id="key-of-ci")
    require_own_agent(ci, "service:ci")
    require_own_agent(ci, "service:ci:gpu-host-4711-a1b2c3")
    for someone_elses in ("service:ci-2:host", "user:ci:host", "service:cid", "gpu-host-4711"):
        with pytest.raises(PermissionDenied) as refused:
            require_own_agent(ci, someone_elses)
        assert "service:ci:<name>" in refused.value.message  # even an admin: it would speak for another agent


def test_the_launch_supervisor_may_fail_the_job_of_an_agent_that_vanished() -> None:
    require_own_agent(service_caller("modelreg-launch-supervisor"), "service:ci:gpu-host-4711-a1b2c3")


def test_an_automation_is_checked_where_it_launches_else_where_it_watches() -> None:
    launch = {"kind": "launch", "entity": "acme"}
    assert automation_scopes({"entity": "other"}, launch) == entity_scopes("acme")
    templated = {"kind": "launch", "entity": "${entity}"}
    assert automation_scopes({"entity": "other"}, templated) == entity_scopes("other")
    webhook = {"kind": "webhook", "url": "https://example.com"}
    assert automation_scopes({"registered_model": "fraud"}, webhook) == model_scopes("fraud")
    assert automation_scopes({"event": "run_finished"}, templated) == ()  # everywhere: the key's own role
