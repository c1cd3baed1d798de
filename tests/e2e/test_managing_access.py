"""Installation admins see who holds which keys and roles, and revoke keys; everyone sees their own access."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg
from support.live_events import graphql_socket, log_readers_reach
from support.stack import Stack

from modelreg.events.log import EventLog

ISSUE_KEY = """mutation($k: PrincipalKind!, $i: String!, $r: Role, $l: String) {
  issueApiKey(input: {principalKind: $k, principalId: $i, role: $r, label: $l}) { key id principal role label }
}"""
GRANT = """mutation($p: String!, $s: String!, $r: Role!) {
  grantRole(input: {principal: $p, scope: $s, role: $r}) { principal scope role grantedBy grantedAt }
}"""
REVOKE_GRANT = "mutation($p: String!, $s: String!) { revokeRole(input: {principal: $p, scope: $s}) { role } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id principal live revokedAt revokedBy } }"
PRINCIPALS = """query($search: String, $after: String) {
  principals(search: $search, first: 50, after: $after) {
    items {
      id kind role
      keys { id prefix principal role label issuedAt issuedBy revokedAt revokedBy live }
      grants { scope role grantedAt grantedBy }
    }
    endCursor hasNextPage
  }
}"""
MY_ACCESS = "{ viewer { id keyId access { id role keys { id role live } grants { scope role grantedBy } } } }"


def _refusal(answer: dict) -> tuple[str, str]:
    error = answer["errors"][0]
    return error["extensions"]["code"], error["message"]


async def _events_on(log: EventLog) -> int:
    return sum((await log.end_positions()).values())


async def _principals(stack: Stack, **variables: object) -> dict[str, dict]:
    answer = await stack.graphql(PRINCIPALS, variables)
    assert "errors" not in answer, answer
    return {p["id"]: p for p in answer["data"]["principals"]["items"]}


async def test_an_admin_lists_every_principal_with_its_keys_and_grants_and_never_a_secret(stack: Stack) -> None:
    issued = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "VIEWER", "l": "zoe's laptop"}))["data"][
        "issueApiKey"
    ]
    granted = await stack.graphql(GRANT, {"p": "user:zoe", "s": "model:nature-classification", "r": "MEMBER"})
    await stack.graphql(GRANT, {"p": "service:ci", "s": "entity:acme", "r": "MEMBER"})  # a grant before any key

    listed = await _principals(stack)

    assert granted["data"]["grantRole"]["grantedBy"] == "user:alice" and granted["data"]["grantRole"]["grantedAt"]
    assert list(listed) == ["service:ci", "user:alice", "user:zoe"]
    zoe = listed["user:zoe"]
    (key,) = zoe["keys"]
    assert issued["key"].startswith(key["prefix"]) and key["prefix"] == f"mr_{issued['id']}_"
    assert (zoe["kind"], zoe["role"], key["role"], key["label"], key["issuedBy"], key["live"]) == (
        "USER",
        "VIEWER",
        "VIEWER",
        "zoe's laptop",
        "user:alice",
        True,
    )
    assert key["revokedAt"] is None and key["revokedBy"] is None
    assert [(g["scope"], g["role"], g["grantedBy"]) for g in zoe["grants"]] == [
        ("model:nature-classification", "MEMBER", "user:alice")
    ]
    assert listed["service:ci"]["role"] is None and listed["service:ci"]["keys"] == []
    assert listed["user:alice"]["role"] == "ADMIN"
    text = json.dumps(listed)
    assert issued["key"] not in text and hashlib.sha256(issued["key"].encode()).hexdigest() not in text

    await stack.graphql(REVOKE_GRANT, {"p": "user:zoe", "s": "model:nature-classification"})
    assert (await _principals(stack, search="zoe"))["user:zoe"]["grants"] == []


async def test_the_list_comes_a_page_at_a_time(stack: Stack) -> None:
    for name in ("ann", "bea", "cyd"):
        await stack.graphql(ISSUE_KEY, {"k": "USER", "i": name, "r": "VIEWER"})
    query = "query($after: String) { principals(first: 2, after: $after) { items { id } endCursor hasNextPage } }"

    first = (await stack.graphql(query))["data"]["principals"]
    second = (await stack.graphql(query, {"after": first["endCursor"]}))["data"]["principals"]

    assert ([p["id"] for p in first["items"]], first["hasNextPage"]) == (["user:alice", "user:ann"], True)
    assert ([p["id"] for p in second["items"]], second["hasNextPage"]) == (["user:bea", "user:cyd"], False)


async def test_a_member_sees_only_its_own_access_and_may_not_list_issue_or_revoke(
    stack: Stack, event_log: EventLog
) -> None:
    zoe = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "VIEWER"}))["data"]["issueApiKey"]
    member = await stack.key("user:mia", role="member")
    await stack.graphql(GRANT, {"p": "user:mia", "s": "registry", "r": "ADMIN"})  # admin of every model, not of keys
    before = await _events_on(event_log)

    listing = await stack.graphql(PRINCIPALS, key=member)
    issuing = await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "mia", "r": "ADMIN"}, key=member)
    revoking = await stack.graphql(REVOKE_KEY, {"id": zoe["id"]}, key=member)
    mine = (await stack.graphql(MY_ACCESS, key=member))["data"]["viewer"]

    code, message = _refusal(listing)
    assert code == "FORBIDDEN" and "user:mia is a member of this installation" in message and "needs admin" in message
    assert _refusal(issuing)[0] == "FORBIDDEN" and _refusal(revoking)[0] == "FORBIDDEN"
    assert await _events_on(event_log) == before
    assert mine["id"] == "user:mia" and mine["access"]["role"] == "MEMBER"
    assert [(k["id"], k["role"], k["live"]) for k in mine["access"]["keys"]] == [(mine["keyId"], "MEMBER", True)]
    assert mine["access"]["grants"] == [{"scope": "registry", "role": "ADMIN", "grantedBy": "user:alice"}]
    assert (await stack.graphql("{ viewer { id } }", key=zoe["key"]))["data"]["viewer"][
        "id"
    ] == "user:zoe"  # still works


async def test_a_revoked_key_is_refused_at_its_next_request(stack: Stack) -> None:
    assert stack.client is not None
    zoe = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "MEMBER"}))["data"]["issueApiKey"]
    assert (await stack.graphql("{ viewer { id } }", key=zoe["key"]))["data"]["viewer"]["id"] == "user:zoe"

    revoked = (await stack.graphql(REVOKE_KEY, {"id": zoe["id"]}))["data"]["revokeApiKey"]
    answer = await stack.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {zoe['key']}"}
    )

    assert (revoked["id"], revoked["principal"], revoked["live"], revoked["revokedBy"]) == (
        zoe["id"],
        "user:zoe",
        False,
        "user:alice",
    )
    assert answer.status == 401 and "unknown or revoked API key" in await answer.text()
    listed = (await _principals(stack, search="zoe"))["user:zoe"]
    assert listed["role"] is None and listed["keys"][0]["revokedAt"] == revoked["revokedAt"]
    again = (await stack.graphql(REVOKE_KEY, {"id": zoe["id"]}))["data"]["revokeApiKey"]
    assert again["revokedAt"] == revoked["revokedAt"]  # already revoked: nothing changes
    assert _refusal(await stack.graphql(REVOKE_KEY, {"id": "000000000000"}))[0] == "NOT_FOUND"
    history = await stack.graphql('{ auditLog(stream: "principal:user:zoe") { items { action actor } } }')
    assert history["data"]["auditLog"]["items"][0] == {"action": "identity.api_key_revoked", "actor": "user:alice"}


async def test_a_revoked_key_loses_its_open_event_sockets(stack: Stack) -> None:
    zoe = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "VIEWER"}))["data"]["issueApiKey"]
    events = 'subscription { events(registeredModel: "nature-classification") { type } }'
    async with graphql_socket(stack) as following, graphql_socket(stack) as idle:
        assert (await following.init({"apiKey": zoe["key"]}))["type"] == "connection_ack"
        assert (await idle.init({"apiKey": zoe["key"]}))["type"] == "connection_ack"
        await following.subscribe("live", events)
        await log_readers_reach(stack, 1)

        await stack.graphql(REVOKE_KEY, {"id": zoe["id"]})
        await idle.subscribe("late", events)

        for socket in (following, idle):
            closed = await socket.receive()
            assert (closed["type"], closed["code"]) == ("closed", 4403) and "revoked" in closed["reason"]


async def test_the_last_live_admin_key_is_not_revoked(stack: Stack) -> None:
    alice = (await stack.graphql("{ viewer { keyId } }"))["data"]["viewer"]["keyId"]

    refused = await stack.graphql(REVOKE_KEY, {"id": alice})
    bob = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "bob", "r": "ADMIN"}))["data"]["issueApiKey"]
    by_bob = await stack.graphql(REVOKE_KEY, {"id": alice}, key=bob["key"])

    code, message = _refusal(refused)
    assert code == "CONFLICT" and "last live admin key" in message
    assert by_bob["data"]["revokeApiKey"]["revokedBy"] == "user:bob"


async def test_no_role_reads_a_keys_hash_in_the_audit_log_or_the_live_events(stack: Stack) -> None:
    viewer = await stack.key("user:dana", role="viewer")
    async with graphql_socket(stack) as socket:
        await socket.init({"apiKey": viewer})
        await socket.subscribe("keys", 'subscription { events(types: ["identity.api_key_issued"]) { payload } }')
        await log_readers_reach(stack, 1)
        issued = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "VIEWER", "l": "laptop"}))["data"][
            "issueApiKey"
        ]
        live = (await socket.next_events("keys", 1))[0]["payload"]
    audited = await stack.graphql('{ auditLog(action: "identity.api_key_issued") { items { details } } }', key=viewer)
    shown = [r["details"] for r in audited["data"]["auditLog"]["items"]] + [live]
    assert any(d["key_id"] == issued["id"] and d["label"] == "laptop" for d in shown)  # the fact is public
    digest = hashlib.sha256(issued["key"].encode()).hexdigest()
    assert all("key_sha256" not in d for d in shown) and digest not in json.dumps(shown)  # its hash is not


async def test_a_key_is_looked_up_once_until_keys_grants_or_private_teams_change(stack: Stack) -> None:
    assert stack.client is not None
    zoe = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "MEMBER"}))["data"]["issueApiKey"]
    yan = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "yan", "r": "MEMBER"}))["data"]["issueApiKey"]

    async def status(key: str) -> int:
        answer = await stack.client.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {key}"}
        )
        return answer.status

    async def revoke_unannounced(key_id: str) -> None:
        """The row changed with its triggers off: nothing tells the API, which answers from what it looked up."""
        conn = await asyncpg.connect(stack.settings.database_url)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", key_id)
        finally:
            await conn.close()

    assert (await status(zoe["key"]), await status(yan["key"])) == (200, 200)
    await revoke_unannounced(zoe["id"])
    assert await status(zoe["key"]) == 200  # not looked up again
    # Any change to who a key is (here a grant to someone else) makes the API look every key up again.
    await stack.graphql(GRANT, {"p": "user:xia", "s": "entity:acme", "r": "VIEWER"})
    assert await status(zoe["key"]) == 401

    # Without its listener (the connection lost), the API looks each key up on each request, and listens again.
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%modelreg_identity%'"
        )
    finally:
        await conn.close()
    await revoke_unannounced(yan["id"])
    for _ in range(100):
        if await status(yan["key"]) == 401:
            break
        await asyncio.sleep(0.05)
    assert await status(yan["key"]) == 401
    wu = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "wu", "r": "MEMBER"}))["data"]["issueApiKey"]
    assert await status(wu["key"]) == 200
    await revoke_unannounced(wu["id"])
    assert await status(wu["key"]) == 200  # heard again: kept again
    await stack.graphql(GRANT, {"p": "user:xia", "s": "entity:acme", "r": "MEMBER"})
    assert await status(wu["key"]) == 401
