"""API keys and roles: a key is shown once and only its hash is logged, the last admin key stays, and the
admins of a scope decide who holds which role there."""

from __future__ import annotations

import hashlib

import pytest
from support.write_side import ADMIN, MEMBER, WriteSide, caller

from modelreg.errors import Conflict, NotFound, PermissionDenied
from modelreg.events.identity import Role
from modelreg.services.commands.commands import GrantRole, IssueApiKey, RevokeApiKey, RevokeRole


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
    with pytest.raises(Conflict, match=f"{second} is the last live admin key: issue another admin key"):
        await registry(RevokeApiKey(key_id=second))


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


async def test_revoking_a_role_the_principal_does_not_hold() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="user:bo holds no role on registry"):
        await registry(RevokeRole(principal_kind="user", principal_id="bo", scope="registry"))
    await registry(GrantRole(principal_kind="user", principal_id="bo", scope="registry", role="viewer"), ADMIN)
    revoked = await registry(RevokeRole(principal_kind="user", principal_id="bo", scope="registry"))
    assert revoked.events[0].type == "identity.role_revoked"
    assert registry.read_models.identity.grants["user", "bo"] == {}
