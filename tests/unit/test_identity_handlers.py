"""API keys and roles: a key is shown once and only its hash is logged, the last admin key stays, and the
admins of a scope decide who holds which role there."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError
from support.write_side import ADMIN, MEMBER, WriteSide, caller

from modelreg.errors import Conflict, NotFound, PermissionDenied
from modelreg.events.catalog import event_class, upcast
from modelreg.events.identity import Role
from modelreg.services.commands.commands import (
    GrantRole,
    IssueApiKey,
    LinkVersion,
    LogArtifactVersion,
    RevokeApiKey,
    RevokeRole,
    SetVisibility,
    StartRun,
)
from modelreg.services.commands.launch_commands import CreateAutomation


async def issued(registry: WriteSide, role: Role = "member", who: str = "bo") -> tuple[str, str]:
    key = (await registry(IssueApiKey(principal_kind="user", principal_id=who, role=role))).subject_id
    return key, key.split("_")[1]


async def test_an_issued_key_is_returned_once_and_only_its_hash_is_on_the_log() -> None:
    registry = WriteSide()
    key, key_id = await issued(registry)
    assert key.startswith(f"mr_{key_id}_")
    [event] = registry.appended()
    assert key not in event.model_dump_json()
    assert event.payload.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert "key_sha256" not in event.payload.public_dump()
    assert event.stream == "principal:user:bo"


async def test_only_an_installation_admin_issues_keys() -> None:
    model_admin = caller("member", "mia", grants={"model:fraud": "admin"})
    with pytest.raises(PermissionDenied, match="issue api key needs admin: ask an installation admin"):
        await WriteSide()(IssueApiKey(principal_kind="user", principal_id="bo"), model_admin)


async def test_revoking_a_key_once() -> None:
    registry = WriteSide()
    _, key_id = await issued(registry)
    assert (await registry(RevokeApiKey(key_id=key_id))).subject_id == key_id
    assert registry.read_models.identity.keys[key_id]["revoked_at"] is not None
    assert (await registry(RevokeApiKey(key_id=key_id))).events == []


async def test_revoking_an_unknown_key() -> None:
    with pytest.raises(NotFound, match="no API key 'abcdef123456'"):
        await WriteSide()(RevokeApiKey(key_id="abcdef123456"))


async def test_the_last_live_admin_key_cannot_be_revoked() -> None:
    registry = WriteSide()
    _, first = await issued(registry, "admin", "root")
    _, second = await issued(registry, "admin", "ops")
    await registry(RevokeApiKey(key_id=first))
    with pytest.raises(Conflict, match=f"{second} is the last live admin key that never expires: issue another"):
        await registry(RevokeApiKey(key_id=second))


async def test_a_key_given_an_end_is_issued_with_it_and_an_ending_admin_key_keeps_no_one_administering() -> None:
    # A contractor's key, a CI key rotated each quarter: refused from then on, as if revoked, with no one to remember.
    registry = WriteSide()
    contractor = await registry(IssueApiKey(principal_kind="user", principal_id="kim", expires_in_s=90 * 86_400))
    issued_at, ends = contractor.events[0].occurred_at, contractor.events[0].payload.expires_at
    assert abs((ends - issued_at).total_seconds() - 90 * 86_400) < 5
    assert (await registry(IssueApiKey(principal_kind="user", principal_id="lou"))).events[0].payload.expires_at is None
    with pytest.raises(ValidationError):
        IssueApiKey(principal_kind="user", principal_id="kim", expires_in_s=0)

    # The last admin key that never expires stays: the ones left would end, and no one could issue keys again.
    _, lasting = await issued(registry, "admin", "root")
    ending = await registry(IssueApiKey(principal_kind="user", principal_id="ops", role="admin", expires_in_s=3600))
    with pytest.raises(Conflict, match="last live admin key that never expires"):
        await registry(RevokeApiKey(key_id=lasting))
    await registry(RevokeApiKey(key_id=ending.events[0].payload.key_id))  # an ending one goes


async def test_an_admin_of_a_model_grants_roles_on_it_and_nowhere_else() -> None:
    registry = WriteSide()
    model_admin = caller("member", "mia", grants={"model:fraud": "admin"})
    await registry(GrantRole(principal_kind="user", principal_id="bo", scope="model:fraud", role="member"), model_admin)
    assert registry.read_models.identity.grants["user", "bo"] == {"model:fraud": "member"}
    with pytest.raises(PermissionDenied, match="user:mia is a member of model:nature; grant role needs admin"):
        await registry(
            GrantRole(principal_kind="user", principal_id="bo", scope="model:nature", role="member"), model_admin
        )
    with pytest.raises(PermissionDenied, match="member of entity:acme"):
        await registry(GrantRole(principal_kind="user", principal_id="bo", scope="entity:acme", role="viewer"), MEMBER)


async def test_a_revoked_role_is_recorded_with_the_role_it_was_and_older_records_read_as_not_saying() -> None:
    # The audit log said who lost a grant where, but not what they could do there until then.
    registry = WriteSide()
    await registry(GrantRole(principal_kind="user", principal_id="bo", scope="entity:acme", role="admin"), ADMIN)
    revoked = await registry(RevokeRole(principal_kind="user", principal_id="bo", scope="entity:acme"))
    assert revoked.events[0].payload.public_dump()["role"] == "admin"

    bo = {"kind": "user", "id": "bo"}
    older = upcast("identity.role_revoked", 1, {"principal": bo, "scope": "entity:acme"})
    assert event_class("identity.role_revoked").model_validate(older).public_dump()["role"] is None


async def test_revoking_a_role_the_principal_does_not_hold() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="user:bo holds no role on registry"):
        await registry(RevokeRole(principal_kind="user", principal_id="bo", scope="registry"))
    await registry(GrantRole(principal_kind="user", principal_id="bo", scope="registry", role="viewer"), ADMIN)
    revoked = await registry(RevokeRole(principal_kind="user", principal_id="bo", scope="registry"))
    assert revoked.events[0].type == "identity.role_revoked"
    assert registry.read_models.identity.grants["user", "bo"] == {}


async def test_a_key_issued_to_a_principal_whose_keys_were_all_revoked_names_the_roles_it_kept() -> None:
    """Grants belong to the principal: a new hire named like someone who left inherited their private team."""
    registry = WriteSide()
    await registry(GrantRole(principal_kind="user", principal_id="bob", scope="entity:vision", role="member"))
    first = await registry(IssueApiKey(principal_kind="user", principal_id="bob"))
    assert first.warnings == ()  # granted before the first key: what it was made for
    assert (await registry(IssueApiKey(principal_kind="user", principal_id="bob"))).warnings == ()
    for key in list(registry.read_models.identity.keys):
        await registry(RevokeApiKey(key_id=key))

    again = await registry(IssueApiKey(principal_kind="user", principal_id="bob", role="viewer"))
    assert again.warnings == (
        "user:bob holds no other live key (each was revoked) but keeps the roles granted to it: member on "
        "entity:vision, which this key holds too. If this is someone else of the same name, take them back "
        "(revokeRole) or issue the key under another id",
    )


async def test_revoking_a_principals_last_live_key_names_the_roles_and_automations_it_keeps() -> None:
    registry = WriteSide()
    await registry(GrantRole(principal_kind="user", principal_id="bob", scope="entity:vision", role="admin"))
    await registry(GrantRole(principal_kind="user", principal_id="bob", scope="registry", role="member"))
    _, laptop = await issued(registry, who="bob")
    _, desktop = await issued(registry, who="bob")
    bob = caller("member", "bob", grants={"entity:vision": "admin", "registry": "member"})
    hook = {"kind": "webhook", "url": "https://93.184.216.34/hook"}
    created = await registry(CreateAutomation(name="notify", trigger={"event": "run_finished"}, action=hook), bob)

    assert (await registry(RevokeApiKey(key_id=laptop))).warnings == ()  # another live key holds them
    last = await registry(RevokeApiKey(key_id=desktop))
    assert last.warnings == (
        "this was user:bob's last live key, and the roles granted to it stay: admin on entity:vision, member on "
        "registry; a key issued to user:bob later holds them again. If user:bob is leaving, take them back "
        "(revokeRole)",
        f"user:bob created automations that stay: notify ({created.subject_id}, on). Each acts with its creator's "
        "rights, and user:bob holds no live key now: one launching jobs launches none, a webhook is still sent what "
        "every key reads. Delete them or switch them off (deleteAutomation, setAutomationEnabled)",
    )


async def test_a_grant_to_a_principal_nobody_holds_a_key_for_is_taken_naming_the_nearest_one() -> None:
    registry = WriteSide()
    await issued(registry, who="alice")
    await issued(registry, who="carol")
    typo = await registry(GrantRole(principal_kind="user", principal_id="alcie", scope="registry", role="admin"))
    assert typo.warnings == (
        "no key was ever issued to user:alcie: the grant holds once one is (did you mean user:alice?)",
    )
    assert registry.read_models.identity.grants["user", "alcie"] == {"registry": "admin"}  # its key may come later
    new_service = await registry(
        GrantRole(principal_kind="service", principal_id="ci", scope="registry", role="member")
    )
    assert new_service.warnings == ("no key was ever issued to service:ci: the grant holds once one is",)
    assert (
        await registry(GrantRole(principal_kind="user", principal_id="alice", scope="registry", role="member"))
    ).warnings == ()


async def test_a_grant_on_a_team_or_model_with_nothing_in_it_is_taken_naming_the_nearest_one() -> None:
    registry = WriteSide()
    await issued(registry, who="alice")
    await registry(StartRun(entity="vision", project="faces", run_id="r1"))
    version = await registry(
        LogArtifactVersion(
            entity="vision",
            project="faces",
            name="weights",
            artifact_type="model",
            manifest=(registry.stored_file(b"w"),),
        )
    )
    await registry(LinkVersion(registered_model="face-recognizer", artifact_version_id=version.subject_id))

    def grant(scope: str) -> GrantRole:
        return GrantRole(principal_kind="user", principal_id="alice", scope=scope, role="admin")

    assert (await registry(grant("entity:visoin"))).warnings == (
        "entity visoin has no run or artifact yet: the grant holds there once it does (did you mean entity:vision?)",
    )
    assert (await registry(grant("model:face-recogniser"))).warnings == (
        "no registered model face-recogniser exists yet: the grant holds there once one is created with that name "
        "(did you mean model:face-recognizer?)",
    )
    for meant in ("entity:vision", "model:face-recognizer", "registry"):
        assert (await registry(grant(meant))).warnings == ()
    await registry(SetVisibility(scope="entity:lynx", private=True))  # a private team set up before its first run
    assert (await registry(grant("entity:lynx"))).warnings == ()


async def test_a_team_admin_is_told_of_a_near_name_granted_in_their_team_and_of_no_one_elses_keys() -> None:
    """Who holds keys is for installation admins; the grants made in a team are its admins' to read."""
    registry = WriteSide()
    await issued(registry, who="carl")  # holds a key, but no role on vision: not named to vision's admin
    await registry(GrantRole(principal_kind="user", principal_id="carol", scope="entity:vision", role="member"))
    await registry(StartRun(entity="vision", project="faces", run_id="r1"))
    team_admin = caller("member", "alice", grants={"entity:vision": "admin"})

    typo = await registry(
        GrantRole(principal_kind="user", principal_id="crol", scope="entity:vision", role="viewer"), team_admin
    )
    assert typo.warnings == ("user:crol holds no role on entity:vision yet (did you mean user:carol?)",)
    unknown = await registry(
        GrantRole(principal_kind="user", principal_id="zed", scope="entity:vision", role="viewer"), team_admin
    )
    assert unknown.warnings == ()
