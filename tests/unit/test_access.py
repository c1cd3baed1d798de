"""Who may do what: a key's role holds everywhere, a grant on a scope overrides it there."""

from __future__ import annotations

import pytest

from modelreg.errors import PermissionDenied
from modelreg.events.envelope import Actor
from modelreg.services.access import Caller, entity_scopes, model_scopes

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
