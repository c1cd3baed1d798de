"""Who may do what: viewers read, members write, admins move protected aliases and manage membership."""

from __future__ import annotations

from support.stack import Stack
from support.story import ADD_ALIAS, LINK, LOG_VERSION, version_input

from modelreg.events.log import EventLog

PROTECT = (
    "mutation($m: String!, $a: String!) { protectAlias(input: {registeredModel: $m, alias: $a}) { protectedAliases } }"
)
UNPROTECT = (
    "mutation($m: String!, $a: String!) { unprotectAlias(input: {registeredModel: $m, alias: $a}) "
    "{ protectedAliases } }"
)
GRANT = (
    "mutation($p: String!, $s: String!, $r: Role!) { grantRole(input: {principal: $p, scope: $s, role: $r}) { role } }"
)
REVOKE = "mutation($p: String!, $s: String!) { revokeRole(input: {principal: $p, scope: $s}) { role } }"
REMOVE_ALIAS = "mutation($m: String!, $a: String!) { removeAlias(input: {registeredModel: $m, alias: $a}) { version } }"
ISSUE_KEY = """mutation($k: PrincipalKind!, $i: String!, $r: Role) {
  issueApiKey(input: {principalKind: $k, principalId: $i, role: $r}) { key principal role }
}"""
VIEWER = "{ viewer { id role grants } }"


async def _events_on(log: EventLog) -> int:
    return sum((await log.end_positions()).values())


async def _two_linked_versions(stack: Stack) -> list[str]:
    ids = []
    for content in (b"first", b"second"):
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", content)})
        ids.append(logged["data"]["logArtifactVersion"]["id"])
        await stack.graphql(LINK, {"model": "nature-classification", "id": ids[-1]})
    return ids


def _refusal(answer: dict) -> tuple[str, str]:
    error = answer["errors"][0]
    return error["extensions"]["code"], error["message"]


async def test_a_viewer_reads_the_registry_but_moving_an_alias_is_refused_and_nothing_is_appended(
    stack: Stack, event_log: EventLog
) -> None:
    first, _ = await _two_linked_versions(stack)
    viewer = await stack.key("user:vic", role="viewer")
    before = await _events_on(event_log)

    read = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { versions { items { version } } } }', key=viewer
    )
    moved = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": first, "alias": "staging"}, key=viewer
    )

    assert [v["version"] for v in read["data"]["registeredModel"]["versions"]["items"]] == ["v0", "v1"]
    code, message = _refusal(moved)
    assert code == "FORBIDDEN"
    assert "user:vic is a viewer of model:nature-classification" in message and "needs member" in message
    assert await _events_on(event_log) == before


async def test_a_member_moves_aliases_but_only_an_admin_moves_a_protected_one(
    stack: Stack, event_log: EventLog
) -> None:
    first, second = await _two_linked_versions(stack)
    member = await stack.key("user:mia", role="member")
    await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": first, "alias": "production"}, actor="user:ada"
    )
    protected = await stack.graphql(PROTECT, {"m": "nature-classification", "a": "production"}, actor="user:ada")
    assert protected["data"]["protectAlias"]["protectedAliases"] == ["production"]
    before = await _events_on(event_log)

    staging = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": second, "alias": "staging"}, key=member
    )
    production = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": second, "alias": "production"}, key=member
    )
    removal = await stack.graphql(REMOVE_ALIAS, {"m": "nature-classification", "a": "production"}, key=member)
    link_with_it = await stack.graphql(
        LINK, {"model": "nature-classification", "id": second, "aliases": ["production"]}, key=member
    )
    unprotect = await stack.graphql(UNPROTECT, {"m": "nature-classification", "a": "production"}, key=member)

    assert staging["data"]["addAlias"]["aliases"] == ["staging"]
    for refused in (production, removal, link_with_it):
        code, message = _refusal(refused)
        assert code == "FORBIDDEN" and "protected alias 'production'" in message and "needs admin" in message
    assert _refusal(unprotect)[0] == "FORBIDDEN"
    assert await _events_on(event_log) == before + 1  # the staging move, nothing else

    by_admin = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": second, "alias": "production"}, actor="user:ada"
    )
    assert by_admin["data"]["addAlias"]["aliases"] == ["production", "staging"]


async def test_an_admin_grants_a_member_admin_of_one_model_and_takes_it_back(stack: Stack) -> None:
    first, second = await _two_linked_versions(stack)
    await stack.graphql(PROTECT, {"m": "nature-classification", "a": "production"})
    member = await stack.key("user:mia", role="member")

    granted = await stack.graphql(GRANT, {"p": "user:mia", "s": "model:nature-classification", "r": "ADMIN"})
    assert granted["data"]["grantRole"]["role"] == "ADMIN"
    me = (await stack.graphql(VIEWER, key=member))["data"]["viewer"]
    assert me == {"id": "user:mia", "role": "MEMBER", "grants": {"model:nature-classification": "admin"}}
    moved = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": first, "alias": "production"}, key=member
    )
    assert moved["data"]["addAlias"]["aliases"] == ["production"]

    await stack.graphql(REVOKE, {"p": "user:mia", "s": "model:nature-classification"})
    refused = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": second, "alias": "production"}, key=member
    )
    assert _refusal(refused)[0] == "FORBIDDEN"

    history = await stack.graphql('{ auditLog(stream: "principal:user:mia") { items { action actor details } } }')
    actions = [(r["action"], r["actor"]) for r in history["data"]["auditLog"]["items"]]
    assert actions[:2] == [("identity.role_revoked", "user:alice"), ("identity.role_granted", "user:alice")]


async def test_a_viewer_of_an_entity_may_not_log_there_but_a_member_grant_lets_it(stack: Stack) -> None:
    member = await stack.key("user:mia", role="member")
    await stack.graphql(GRANT, {"p": "user:mia", "s": "entity:acme", "r": "VIEWER"})

    refused = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"x")}, key=member)
    code, message = _refusal(refused)
    assert code == "FORBIDDEN" and "viewer of entity:acme" in message

    await stack.graphql(GRANT, {"p": "user:mia", "s": "entity:acme", "r": "MEMBER"})
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"x")}, key=member)
    assert logged["data"]["logArtifactVersion"]["createdBy"] == "user:mia"


async def test_only_installation_admins_issue_keys_and_an_issued_key_works_at_once(stack: Stack) -> None:
    member = await stack.key("user:mia", role="member")

    refused = await stack.graphql(ISSUE_KEY, {"k": "SERVICE", "i": "ci", "r": "ADMIN"}, key=member)
    issued = (await stack.graphql(ISSUE_KEY, {"k": "SERVICE", "i": "ci", "r": "MEMBER"}))["data"]["issueApiKey"]

    assert _refusal(refused)[0] == "FORBIDDEN"
    assert issued["principal"] == "service:ci" and issued["key"].startswith("mr_")
    assert (await stack.graphql(VIEWER, key=issued["key"]))["data"]["viewer"]["id"] == "service:ci"


async def test_a_request_without_a_key_is_refused_and_told_where_the_admin_key_is(stack: Stack) -> None:
    assert stack.client is not None
    answer = await stack.client.post("/graphql", json={"query": VIEWER})
    upload = await stack.client.put("/blobs/sha256:" + "0" * 64, data=b"x")

    assert answer.status == 401 and "admin-api-key" in await answer.text()
    assert upload.status == 401
