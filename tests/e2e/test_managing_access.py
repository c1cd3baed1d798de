"""Installation admins see who holds which keys and roles, and revoke keys; everyone sees their own access."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg
import pytest
from support.command_line import command_line
from support.live_events import graphql_socket, log_readers_reach
from support.stack import Stack
from support.story import START_RUN

from modelreg.events.log import EventLog

ISSUE_KEY = """mutation($k: PrincipalKind!, $i: String!, $r: Role, $l: String) {
  issueApiKey(input: {principalKind: $k, principalId: $i, role: $r, label: $l}) { key id principal role label }
}"""
GRANT = """mutation($p: String!, $s: String!, $r: Role!) {
  grantRole(input: {principal: $p, scope: $s, role: $r}) { principal scope role grantedBy grantedAt }
}"""
REVOKE_GRANT = "mutation($p: String!, $s: String!) { revokeRole(input: {principal: $p, scope: $s}) { role } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id principal live revokedAt revokedBy } }"
REVOKE_KEY_SAYING = "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { live warnings } }"
GRANT_SAYING = """mutation($p: String!, $s: String!, $r: Role!) {
  grantRole(input: {principal: $p, scope: $s, role: $r}) { principal scope role warnings }
}"""
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
ISSUE_LIMITED_KEY = """mutation($i: String!, $r: Role!, $s: [String!]!) {
  issueApiKey(input: {principalKind: USER, principalId: $i, role: $r, scopes: $s}) { key }
}"""
SET_VISIBILITY = """mutation($s: String!, $v: Visibility!) {
  setVisibility(input: {scope: $s, visibility: $v}) { scope }
}"""
IDENTITY_ACTIONS = [
    "identity.api_key_issued",
    "identity.api_key_revoked",
    "identity.role_granted",
    "identity.role_revoked",
    "identity.scope_made_private",
    "identity.scope_made_public",
]
AUDITED = """query($actions: [String!], $stream: String, $actor: String, $first: Int!, $after: String) {
  auditLog(actions: $actions, stream: $stream, actor: $actor, first: $first, after: $after) {
    items { action actor details } endCursor hasNextPage
  }
}"""
EVERY_EVENT = "subscription { events(fromNow: false) { type stream payload } }"


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


ISSUE_ENDING_KEY = """mutation($i: String!, $s: Int!) {
  issueApiKey(input: {principalKind: USER, principalId: $i, role: VIEWER, expiresInS: $s}) { key id expiresAt }
}"""


async def test_a_key_given_an_end_is_refused_from_then_on_and_its_open_sockets_close(stack: Stack) -> None:
    # A contractor's key worked until someone remembered to revoke it.
    assert stack.client is not None
    kim = (await stack.graphql(ISSUE_ENDING_KEY, {"i": "kim", "s": 3}))["data"]["issueApiKey"]
    assert kim["expiresAt"] is not None
    assert (await stack.graphql("{ viewer { id } }", key=kim["key"]))["data"]["viewer"]["id"] == "user:kim"
    (key,) = (await _principals(stack, search="kim"))["user:kim"]["keys"]
    assert key["live"]

    async with graphql_socket(stack) as socket:
        assert (await socket.init({"apiKey": kim["key"]}))["type"] == "connection_ack"
        closed = await asyncio.wait_for(socket.receive(), timeout=30)
    assert (closed["type"], closed["code"]) == ("closed", 4403) and "expired" in closed["reason"]

    answer = await stack.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {kim['key']}"}
    )
    assert answer.status == 401 and f"API key mr_{kim['id']}_ expired at " in await answer.text()
    listed = (await _principals(stack, search="kim"))["user:kim"]
    assert listed["role"] is None and not listed["keys"][0]["live"]


async def test_the_last_live_admin_key_is_not_revoked(stack: Stack) -> None:
    alice = (await stack.graphql("{ viewer { keyId } }"))["data"]["viewer"]["keyId"]

    refused = await stack.graphql(REVOKE_KEY, {"id": alice})
    bob = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "bob", "r": "ADMIN"}))["data"]["issueApiKey"]
    by_bob = await stack.graphql(REVOKE_KEY, {"id": alice}, key=bob["key"])

    code, message = _refusal(refused)
    assert code == "CONFLICT" and "last live admin key" in message
    assert by_bob["data"]["revokeApiKey"]["revokedBy"] == "user:bob"


async def test_not_even_an_admin_reads_a_keys_hash_in_the_audit_log_or_the_live_events(stack: Stack) -> None:
    admin = await stack.key("user:ada", role="admin")
    async with graphql_socket(stack) as socket:
        await socket.init({"apiKey": admin})
        await socket.subscribe("keys", 'subscription { events(types: ["identity.api_key_issued"]) { payload } }')
        await log_readers_reach(stack, 1)
        issued = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "VIEWER", "l": "laptop"}))["data"][
            "issueApiKey"
        ]
        live = (await socket.next_events("keys", 1))[0]["payload"]
    audited = await stack.graphql('{ auditLog(action: "identity.api_key_issued") { items { details } } }', key=admin)
    shown = [r["details"] for r in audited["data"]["auditLog"]["items"]] + [live]
    assert any(d["key_id"] == issued["id"] and d["label"] == "laptop" for d in shown)  # the fact is the admins'
    digest = hashlib.sha256(issued["key"].encode()).hexdigest()
    assert all("key_sha256" not in d for d in shown) and digest not in json.dumps(shown)  # its hash is nobody's


async def _audited(stack: Stack, key: str, **variables: object) -> list[dict]:
    """Every record the key reads with these filters, page after page."""
    records: list[dict] = []
    after = None
    while True:
        answer = await stack.graphql(AUDITED, {"first": 2, **variables, "after": after}, key=key)
        assert "errors" not in answer, answer
        page = answer["data"]["auditLog"]
        records += page["items"]
        if not page["hasNextPage"]:
            return records
        after = page["endCursor"]


def _identity_records(records: list[dict]) -> set[tuple[str, str]]:
    """(action, whose) of each identity record, from the audit log (action, details) or live events (type, payload):
    whose key or grant it is, or the scope made private or public."""
    found = set()
    for record in records:
        action = record.get("action") or record["type"]
        if action.startswith("identity."):
            details = record.get("details") or record["payload"]
            principal = details.get("principal")
            found.add((action, f"{principal['kind']}:{principal['id']}" if principal else details["scope"]))
    return found


# One partition: the run started last is the last event each socket receives, after everything before it.
@pytest.mark.parametrize("log_kind", ["postgres"])
async def test_who_holds_which_key_and_role_is_read_by_installation_admins_and_by_each_principal_of_its_own(
    stack: Stack,
) -> None:
    dana = await stack.key("user:dana", role="viewer")
    admin = await stack.key("user:ada", role="admin")
    limited_admin = (await stack.graphql(ISSUE_LIMITED_KEY, {"i": "lim", "r": "ADMIN", "s": ["entity:acme"]}))["data"][
        "issueApiKey"
    ]["key"]
    zoe = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "MEMBER", "l": "zoe's laptop"}))["data"][
        "issueApiKey"
    ]
    await stack.graphql(GRANT, {"p": "user:zoe", "s": "model:nature-classification", "r": "ADMIN"})
    await stack.graphql(GRANT, {"p": "user:dana", "s": "entity:acme", "r": "MEMBER"})
    await stack.graphql(SET_VISIBILITY, {"s": "entity:lynx", "v": "PRIVATE"})
    await stack.graphql(REVOKE_KEY, {"id": zoe["id"]})

    async with graphql_socket(stack) as dana_socket, graphql_socket(stack) as admin_socket:
        for socket, key in [(dana_socket, dana), (admin_socket, admin)]:
            assert (await socket.init({"apiKey": key}))["type"] == "connection_ack"
            await socket.subscribe("all", EVERY_EVENT)
        await log_readers_reach(stack, 2)
        # Live, after the replay: more of the same, then a run everyone reads.
        await stack.graphql(GRANT, {"p": "user:dana", "s": "model:nature-classification", "r": "VIEWER"})
        await stack.graphql(REVOKE_GRANT, {"p": "user:zoe", "s": "model:nature-classification"})
        await stack.graphql(ISSUE_KEY, {"k": "SERVICE", "i": "ci", "r": "MEMBER", "l": "ci runner on build-7"})
        await stack.graphql(SET_VISIBILITY, {"s": "entity:lynx", "v": "PUBLIC"})
        await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "yard", "runId": "last"}})
        live: dict[str, list[dict]] = {}
        for who, socket in [("dana", dana_socket), ("admin", admin_socket)]:
            live[who] = []
            while not live[who] or live[who][-1]["type"] != "runs.run_started":
                live[who] += await socket.next_events("all", 1)

    everyone_else = {
        ("identity.api_key_issued", "user:ada"),
        ("identity.api_key_issued", "user:lim"),
        ("identity.api_key_issued", "user:zoe"),
        ("identity.api_key_issued", "service:ci"),
        ("identity.api_key_revoked", "user:zoe"),
        ("identity.role_granted", "user:zoe"),
        ("identity.role_revoked", "user:zoe"),
        ("identity.scope_made_private", "entity:lynx"),
        ("identity.scope_made_public", "entity:lynx"),
    }
    danas_own = {
        ("identity.api_key_issued", "user:dana"),
        ("identity.role_granted", "user:dana"),
    }
    # Dana, a viewer, reads her own key and grants, in the audit log however she asks and live; nothing of anyone
    # else's.
    for filters in [{"actions": IDENTITY_ACTIONS}, {}]:
        assert _identity_records(await _audited(stack, dana, **filters)) == danas_own, filters
    assert _identity_records(await _audited(stack, dana, actor="user:alice")) == {
        ("identity.role_granted", "user:dana")
    }
    for stream in ["principal:user:zoe", "principal:user:ada", "visibility:entity:lynx"]:
        assert await _audited(stack, dana, stream=stream) == []
    assert _identity_records(live["dana"]) == danas_own
    danas_live = [e for e in live["dana"] if e["type"].startswith("identity.")]
    assert len(danas_live) == 3 and {e["stream"] for e in danas_live} == {"principal:user:dana"}
    # An admin key limited to a team is no installation admin: its own records and the team's grants, which it may
    # make, no one else's key.
    assert _identity_records(await _audited(stack, limited_admin, actions=IDENTITY_ACTIONS)) == {
        ("identity.api_key_issued", "user:lim"),
        ("identity.role_granted", "user:dana"),
    }
    # An installation admin reads them all, labels included.
    admin_reads = await _audited(stack, admin, actions=IDENTITY_ACTIONS)
    assert everyone_else | danas_own <= _identity_records(admin_reads)
    assert everyone_else | danas_own <= _identity_records(live["admin"])
    assert "zoe's laptop" in json.dumps(admin_reads) and "zoe's laptop" not in json.dumps(live["dana"])


# One partition: the run started last is the last event the socket receives, after everything before it.
@pytest.mark.parametrize("log_kind", ["postgres"])
async def test_a_team_admin_reads_the_grants_made_in_their_team_and_its_visibility_but_no_key(stack: Stack) -> None:
    # They could make them (grantRole, setVisibility need admin on the scope), but read none of them: the audit log
    # showed identity records to installation admins and to the principal concerned only.
    tam = await stack.key("user:tam", role="member")
    await stack.graphql(GRANT, {"p": "user:tam", "s": "entity:acme", "r": "ADMIN"})
    await stack.graphql(GRANT, {"p": "user:zoe", "s": "entity:lynx", "r": "MEMBER"})  # another team's
    await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "zoe", "r": "MEMBER", "l": "zoe's laptop"})
    assert "errors" not in await stack.graphql(GRANT, {"p": "user:dana", "s": "entity:acme", "r": "VIEWER"}, key=tam)

    async with graphql_socket(stack) as socket:
        assert (await socket.init({"apiKey": tam}))["type"] == "connection_ack"
        await socket.subscribe("all", "subscription { events { type stream payload } }")
        await log_readers_reach(stack, 1)
        await stack.graphql(SET_VISIBILITY, {"s": "entity:acme", "v": "PRIVATE"}, key=tam)
        await stack.graphql(SET_VISIBILITY, {"s": "entity:lynx", "v": "PRIVATE"})
        await stack.graphql(REVOKE_GRANT, {"p": "user:dana", "s": "entity:acme"})
        await stack.graphql(GRANT, {"p": "user:zoe", "s": "entity:lynx", "r": "VIEWER"})
        await stack.graphql(ISSUE_KEY, {"k": "SERVICE", "i": "ci", "r": "MEMBER", "l": "ci runner on build-7"})
        await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "yard", "runId": "last"}})
        live: list[dict] = []
        while not live or live[-1]["type"] != "runs.run_started":
            live += await socket.next_events("all", 1)

    assert _identity_records(await _audited(stack, tam, actions=IDENTITY_ACTIONS)) == {
        ("identity.api_key_issued", "user:tam"),  # their own
        ("identity.role_granted", "user:tam"),
        ("identity.role_granted", "user:dana"),
        ("identity.scope_made_private", "entity:acme"),
        ("identity.role_revoked", "user:dana"),
    }
    assert _identity_records(live) == {
        ("identity.scope_made_private", "entity:acme"),
        ("identity.role_revoked", "user:dana"),
    }
    assert "laptop" not in json.dumps(await _audited(stack, tam)) and "build-7" not in json.dumps(live)


GRANTS_ON = """query($s: String!, $first: Int, $after: String) {
  grantsOn(scope: $s, first: $first, after: $after) { items { principal role grantedBy } endCursor hasNextPage }
}"""


async def test_a_team_admin_lists_who_holds_a_role_in_their_team_a_page_at_a_time(stack: Stack) -> None:
    # They granted and revoked roles there, but could not see who held one: only installation admins listed grants.
    tam = await stack.key("user:tam", role="member")
    await stack.graphql(GRANT, {"p": "user:tam", "s": "entity:acme", "r": "ADMIN"})
    for principal, role in (("user:dana", "VIEWER"), ("service:ci", "MEMBER"), ("user:eve", "MEMBER")):
        assert "errors" not in await stack.graphql(GRANT, {"p": principal, "s": "entity:acme", "r": role}, key=tam)
    await stack.graphql(GRANT, {"p": "user:zoe", "s": "entity:lynx", "r": "MEMBER"})  # another team's
    await stack.graphql(REVOKE_GRANT, {"p": "user:eve", "s": "entity:acme"}, key=tam)

    first = (await stack.graphql(GRANTS_ON, {"s": "entity:acme", "first": 2}, key=tam))["data"]["grantsOn"]
    assert first["items"] == [
        {"principal": "service:ci", "role": "MEMBER", "grantedBy": "user:tam"},
        {"principal": "user:dana", "role": "VIEWER", "grantedBy": "user:tam"},
    ]
    assert first["hasNextPage"]
    rest = await stack.graphql(GRANTS_ON, {"s": "entity:acme", "first": 2, "after": first["endCursor"]}, key=tam)
    assert rest["data"]["grantsOn"]["items"] == [{"principal": "user:tam", "role": "ADMIN", "grantedBy": "user:alice"}]
    assert not rest["data"]["grantsOn"]["hasNextPage"]

    # Another team's members are its admins' to list; a member of the team lists none; a typo says what a scope is.
    (other,) = (await stack.graphql(GRANTS_ON, {"s": "entity:lynx"}, key=tam))["errors"]
    assert other["extensions"]["code"] == "FORBIDDEN" and "listing who holds a role on entity:lynx" in other["message"]
    dana = await stack.key("user:dana", role="member")
    (member,) = (await stack.graphql(GRANTS_ON, {"s": "entity:acme"}, key=dana))["errors"]
    assert member["extensions"]["code"] == "FORBIDDEN"
    (typo,) = (await stack.graphql(GRANTS_ON, {"s": "acme"}, key=tam))["errors"]
    assert typo["extensions"]["code"] == "INVALID_INPUT" and "'acme' is not a scope: registry," in typo["message"]
    everyone = await stack.graphql(GRANTS_ON, {"s": "entity:lynx"})
    assert everyone["data"]["grantsOn"]["items"] == [
        {"principal": "user:zoe", "role": "MEMBER", "grantedBy": "user:alice"}
    ]


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


async def test_offboarding_says_what_outlives_a_principals_keys_and_a_new_key_under_its_name_says_what_it_inherits(
    stack: Stack,
) -> None:
    await stack.graphql('mutation { createLaunchQueue(input: {name: "cpu", resource: DOCKER}) { name } }')
    await stack.graphql(GRANT, {"p": "user:bob", "s": "entity:vision", "r": "ADMIN"})
    bob = (await stack.graphql(ISSUE_KEY, {"k": "USER", "i": "bob", "r": "MEMBER"}))["data"]["issueApiKey"]
    evaluate = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "vision",
        "project": "faces",
        "source": {"kind": "image", "image": "python:3.12", "entry_point": ["python", "eval.py"]},
    }
    created = await stack.graphql(
        """mutation($a: GenericScalar!) { createAutomation(input: {name: "evaluate", action: $a,
             trigger: {event: "run_finished", entity: "vision"}}) { automation { id warnings } } }""",
        {"a": evaluate},
        key=bob["key"],
    )
    assert created["data"]["createAutomation"]["automation"]["warnings"] == []

    revoked = (await stack.graphql(REVOKE_KEY_SAYING, {"id": bob["id"]}))["data"]["revokeApiKey"]
    listed = (await stack.graphql("{ automations { items { id name enabled warnings } } }"))["data"]["automations"]
    _, listed_on_the_command_line = await (await command_line(stack)).with_warnings("automation", "list")
    new_hire = await stack.graphql(
        """mutation { issueApiKey(input: {principalKind: USER, principalId: "bob", role: VIEWER}) {
             grants { scope role } warnings } }"""
    )
    typo = await stack.graphql(GRANT_SAYING, {"p": "user:bbo", "s": "entity:visoin", "r": "VIEWER"})

    assert revoked["live"] is False
    grants_stay, automations_stay = revoked["warnings"]
    assert grants_stay.startswith("this was user:bob's last live key, and the roles granted to it stay: admin on ")
    assert automations_stay.startswith("user:bob created automations that stay: evaluate (")
    [automation] = listed["items"]
    assert automation["enabled"] is True
    assert automation["warnings"] == [
        "user:bob, its creator, holds no live key (each was revoked), and it acts with their rights: it launches no "
        "job: each firing fails, saying so. Switch it off or delete it, or issue user:bob a key (issueApiKey) or have "
        "someone else create it again"
    ]
    assert listed_on_the_command_line == f"warning: automation {automation['id']}: {automation['warnings'][0]}\n"
    issued = new_hire["data"]["issueApiKey"]
    assert issued["grants"] == [{"scope": "entity:vision", "role": "ADMIN"}]
    assert issued["warnings"][0].startswith(
        "user:bob holds no other live key (each was revoked) but keeps the roles granted to it: admin on entity:vision"
    )
    assert typo["data"]["grantRole"]["warnings"] == [
        "no key was ever issued to user:bbo: the grant holds once one is (did you mean user:bob?)",
        "entity visoin has no run or artifact yet: the grant holds there once it does",
    ]
