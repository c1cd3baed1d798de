"""A UI follows the registry live: GraphQL subscriptions over a websocket, fed by the event log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
from support.live_events import graphql_socket, log_readers_reach, sends_block
from support.stack import Stack
from support.story import ADD_ALIAS, LINK, LOG_VERSION, version_input
from support.waiting import until

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog
from modelreg.events.runs import RunStarted
from modelreg.graphql.variables import COERCED_ON_THE_LOOP
from modelreg.services.http.api import SOCKETS_PER_PRINCIPAL, TAILS
from modelreg.services.settings import Settings

EVENTS = """
subscription Follow($types: [String!], $model: String) {
  events(types: $types, registeredModel: $model) {
    id type version stream occurredAt actor correlationId causationId payload position { topic partition offset }
  }
}"""

ALIAS_MOVED = """
subscription Moves($model: String!) { aliasMoved(registeredModel: $model) { type actor payload } }"""

ALIAS_MOVED_TO = """
subscription Moves($model: String!, $alias: String) {
  aliasMoved(registeredModel: $model, alias: $alias) { type actor payload }
}"""

UNLINK = """
mutation($model: String!, $id: ID!) {
  unlinkArtifactVersion(input: {registeredModel: $model, artifactVersionId: $id}) { name }
}"""

VERSION_LINKED = """
subscription Links($model: String!) { versionLinked(registeredModel: $model) { type payload } }"""


async def _version(stack: Stack, content: bytes) -> str:
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", content)})
    return logged["data"]["logArtifactVersion"]["id"]


async def test_a_ui_following_one_model_receives_exactly_its_links_and_alias_moves(stack: Stack) -> None:
    v0 = await _version(stack, b"weights-0")
    v1 = await _version(stack, b"weights-1")
    async with graphql_socket(stack) as socket:
        ack = await socket.init({"Authorization": f"Bearer {await stack.key('user:ui', role='viewer')}"})
        assert ack == {"type": "connection_ack", "payload": {"principal": "user:ui", "role": "viewer"}}
        await socket.subscribe(
            "links-and-moves",
            EVENTS,
            {"types": ["registry.version_linked", "registry.alias_added"], "model": "nature-classification"},
        )
        await socket.subscribe("moves", ALIAS_MOVED, {"model": "nature-classification"})
        await socket.subscribe("links", VERSION_LINKED, {"model": "nature-classification"})
        await log_readers_reach(stack, 3)

        await _version(stack, b"weights-2")  # another type of event
        await stack.graphql(
            LINK, {"model": "nature-classification", "id": v0, "aliases": ["staging"]}, actor="user:bob"
        )
        await stack.graphql(LINK, {"model": "other-model", "id": v1, "aliases": ["staging"]})  # another model
        await stack.graphql(LINK, {"model": "nature-classification", "id": v1})
        await stack.graphql(
            ADD_ALIAS, {"model": "nature-classification", "id": v1, "alias": "staging"}, actor="user:carol"
        )
        tagged = await stack.graphql(
            'mutation { tagRegisteredModel(input: {registeredModel: "nature-classification", tag: "vision"}) { name } }'
        )
        assert "errors" not in tagged  # the model's stream, another type
        # Last, so that anything the filters let through by mistake would have come before it.
        await stack.graphql(
            ADD_ALIAS, {"model": "nature-classification", "id": v1, "alias": "production"}, actor="user:dan"
        )

        followed = await socket.next_events("links-and-moves", 5)
        assert [(e["type"], e["actor"], e["payload"]["artifact_version_id"]) for e in followed] == [
            ("registry.version_linked", "user:bob", v0),
            ("registry.alias_added", "user:bob", v0),
            ("registry.version_linked", "user:alice", v1),
            ("registry.alias_added", "user:carol", v1),
            ("registry.alias_added", "user:dan", v1),
        ]
        linked_v0, staging_v0, _, staging_v1, _ = followed
        assert staging_v1["payload"] == {
            "registered_model": "nature-classification",
            "artifact_version_id": v1,
            "alias": "staging",
        }
        assert {e["stream"] for e in followed} == {"registered_model:nature-classification"}
        assert staging_v0["version"] == 1 and staging_v0["occurredAt"]
        assert staging_v0["causationId"] is None and staging_v0["id"] != linked_v0["id"]
        # One mutation, one correlation: the link and the alias it set carry the link's id.
        assert linked_v0["correlationId"] == staging_v0["correlationId"] == linked_v0["id"]
        assert staging_v1["correlationId"] == staging_v1["id"]  # a mutation of its own
        # One stream, one partition: the offsets say the order, and the UI can tell what it has seen.
        assert len({e["position"]["partition"] for e in followed}) == 1
        offsets = [e["position"]["offset"] for e in followed]
        assert offsets == sorted(offsets)

        moves = await socket.next_events("moves", 3)
        assert [(m["actor"], m["payload"]["alias"], m["payload"]["artifact_version_id"]) for m in moves] == [
            ("user:bob", "staging", v0),
            ("user:carol", "staging", v1),
            ("user:dan", "production", v1),
        ]
        links = await socket.next_events("links", 2)
        assert [link["payload"]["artifact_version_id"] for link in links] == [v0, v1]


async def test_a_deploy_watcher_on_production_is_told_when_an_unlink_takes_the_alias_away(stack: Stack) -> None:
    # Told only of the alias being set, a watcher kept believing production was the unlinked version.
    v0 = await _version(stack, b"weights-0")
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("production", ALIAS_MOVED_TO, {"model": "nature-classification", "alias": "production"})
        await log_readers_reach(stack, 1)
        await stack.graphql(LINK, {"model": "nature-classification", "id": v0, "aliases": ["production", "best"]})
        unlinked = await stack.graphql(UNLINK, {"model": "nature-classification", "id": v0}, actor="user:bob")
        assert "errors" not in unlinked

        async with asyncio.timeout(30):  # the server's pings keep the socket's own wait from ever running out
            moves = await socket.next_events("production", 2)
        assert [(m["type"], m["actor"], m["payload"]["artifact_version_id"]) for m in moves] == [
            ("registry.alias_added", "user:alice", v0),
            ("registry.alias_removed", "user:bob", v0),
        ]
    production = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { alias(name: "production") { version } } }'
    )
    assert production["data"]["registeredModel"]["alias"] is None


async def test_a_socket_without_a_valid_api_key_is_refused(stack: Stack) -> None:
    async with graphql_socket(stack) as socket:
        refused = await socket.init()
        assert refused["type"] == "closed" and refused["code"] == 4403
    async with graphql_socket(stack) as socket:
        refused = await socket.init({"apiKey": "mr_not-a-key"})
        assert refused["type"] == "closed" and refused["code"] == 4403
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        refused = await socket.init(
            {"Authorization": "Bearer mr_not-a-key"}
        )  # a bad key is not made good by the header
        assert refused["type"] == "closed" and refused["code"] == 4403
    async with graphql_socket(stack) as socket:
        await socket.subscribe("early", VERSION_LINKED, {"model": "m"})  # before connection_init
        refused = await socket.receive()
        assert refused["type"] == "closed" and refused["code"] == 4401

    async with graphql_socket(stack, headers=await stack.auth("user:bob", "viewer")) as socket:
        assert (await socket.init())["payload"] == {
            "principal": "user:bob",
            "role": "viewer",
        }  # the header's key will do
    async with graphql_socket(stack) as socket:
        assert (await socket.init({"apiKey": await stack.key("user:bob", "viewer")}))["type"] == "connection_ack"


async def test_a_closed_socket_or_a_completed_subscription_stops_its_log_reader(stack: Stack) -> None:
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("a", VERSION_LINKED, {"model": "m"})
        await socket.subscribe("b", ALIAS_MOVED, {"model": "m"})
        await log_readers_reach(stack, 2)
        await socket.send({"id": "a", "type": "complete"})
        await log_readers_reach(stack, 1)
    await log_readers_reach(stack, 0)


async def test_a_subscriber_that_does_not_read_holds_back_no_one_else(stack: Stack) -> None:
    v0 = await _version(stack, b"weights-0")
    async with (
        graphql_socket(stack, headers=await stack.auth()) as idle,
        graphql_socket(stack, headers=await stack.auth()) as ui,
    ):
        await idle.init()
        await idle.subscribe("all", EVENTS)  # and never reads a message
        await ui.init()
        await ui.subscribe("links", VERSION_LINKED, {"model": "nature-classification"})
        await log_readers_reach(stack, 2)

        for n in range(5):
            await _version(stack, f"more-{n}".encode())
        await stack.graphql(LINK, {"model": "nature-classification", "id": v0})
        (link,) = await ui.next_events("links", 1)
        assert link["payload"]["artifact_version_id"] == v0


async def test_bad_subscriptions_are_refused_one_by_one_and_the_socket_goes_on(stack: Stack) -> None:
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("typo", EVENTS, {"types": ["registry.version_linkd"]})
        typo = await socket.receive()
        assert typo["type"] == "next" and typo["id"] == "typo"
        (error,) = typo["payload"]["errors"]
        assert "unknown event type(s) registry.version_linkd" in error["message"]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert await socket.receive() == {"id": "typo", "type": "complete"}

        await socket.subscribe("query", "{ viewer { id } }")
        query = await socket.receive()
        assert query["type"] == "error" and "send queries and mutations as HTTP POST" in query["payload"][0]["message"]

        await socket.subscribe("nope", "subscription { events { nope } }")
        nope = await socket.receive()
        assert nope["type"] == "error" and "Cannot query field 'nope'" in nope["payload"][0]["message"]

        # The library coerces a subscription's variables on the event loop, where 700,000 types held everyone 6 s.
        types = [f"registry.kind_{n}" for n in range(COERCED_ON_THE_LOOP + 1)]
        await socket.subscribe("many", EVENTS, {"types": types})
        many = await socket.receive()
        assert many["type"] == "error" and many["id"] == "many"
        (error,) = many["payload"]
        assert f"the variables hold over {COERCED_ON_THE_LOOP:,} values" in error["message"]
        assert error["extensions"]["code"] == "INVALID_INPUT"

        await socket.subscribe("fine", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 1)

    assert stack.client is not None
    over_http = await stack.client.post(
        "/graphql", json={"query": VERSION_LINKED, "variables": {"model": "m"}}, headers=await stack.auth()
    )
    assert over_http.status == 400 and "websocket" in await over_http.text()


async def test_a_subscriber_can_replay_the_log_from_the_beginning_and_then_go_on_live(stack: Stack) -> None:
    v0 = await _version(stack, b"weights-0")
    v1 = await _version(stack, b"weights-1")
    await stack.graphql(LINK, {"model": "nature-classification", "id": v0})  # before anyone subscribed
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe(
            "history",
            'subscription { events(types: ["registry.version_linked"], streamPrefix: "registered_model:", '
            "fromNow: false) { payload } }",
        )
        (earlier,) = await socket.next_events("history", 1)
        await stack.graphql(LINK, {"model": "nature-classification", "id": v1})
        (later,) = await socket.next_events("history", 1)
    assert [earlier["payload"]["artifact_version_id"], later["payload"]["artifact_version_id"]] == [v0, v1]


async def test_stopping_the_api_tells_subscribers_it_is_going_away_and_closes_their_readers(stack: Stack) -> None:
    assert stack.client is not None
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("links", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 1)
        await stack.client.server.app.shutdown()  # what the runner does first when the process is stopped
        closed = await socket.receive()
        assert closed["type"] == "closed" and closed["code"] == 1001
    await log_readers_reach(stack, 0)


async def test_a_ui_whose_socket_dropped_resumes_right_after_the_last_event_it_saw(stack: Stack) -> None:
    versions = [await _version(stack, f"weights-{n}".encode()) for n in range(3)]
    follow = (
        "subscription($after: String) "
        '{ versionLinked(registeredModel: "nature-classification", after: $after) { payload cursor } }'
    )
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("links", follow)
        await log_readers_reach(stack, 1)
        await stack.graphql(LINK, {"model": "nature-classification", "id": versions[0]})
        (seen,) = await socket.next_events("links", 1)
    # While the UI is away:
    await stack.graphql(LINK, {"model": "nature-classification", "id": versions[1]})
    await stack.graphql(LINK, {"model": "nature-classification", "id": versions[2]})

    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("links", follow, {"after": seen["cursor"]})
        missed = await socket.next_events("links", 2)
        assert [m["payload"]["artifact_version_id"] for m in missed] == versions[1:]

        await socket.subscribe("bad", follow, {"after": "bm90LWEtY3Vyc29y"})
        bad = await socket.receive()
        assert bad["id"] == "bad" and bad["payload"]["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert await socket.receive() == {"id": "bad", "type": "complete"}
        # A cursor of this log but for its offset, which no event has (negative), is no cursor; not another log's.
        negative = base64.urlsafe_b64encode(f"t:{stack.settings.topic}\x1f0=-5".encode()).decode()
        await socket.subscribe("negative", follow, {"after": negative})
        (refused,) = (await socket.receive())["payload"]["errors"]
        assert refused["extensions"]["code"] == "INVALID_INPUT" and "another installation" not in refused["message"]
        assert "pass the `cursor` of an event a subscription sent" in refused["message"]


async def test_beyond_the_processs_limit_a_subscription_is_refused_as_retriable(stack: Stack) -> None:
    assert stack.client is not None
    stack.client.server.app[TAILS].max_open = 1  # 50 by default: each reader is a connection
    async with graphql_socket(stack, headers=await stack.auth()) as socket:
        await socket.init()
        await socket.subscribe("first", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 1)
        await socket.subscribe("second", VERSION_LINKED, {"model": "m"})
        refused = await socket.receive()
        assert refused["id"] == "second"
        assert refused["payload"]["errors"][0]["extensions"] == {"code": "UNAVAILABLE", "retriable": True}


async def test_one_principal_holds_a_bounded_share_of_the_subscriptions_and_others_still_subscribe(
    stack: Stack,
) -> None:
    """A viewer's key that opened every place would lock everyone else out of live events."""
    assert stack.client is not None
    stack.client.server.app[TAILS].max_per_owner = 2  # 10 by default
    viewer = {"Authorization": f"Bearer {await stack.key('user:vic', 'viewer')}"}
    async with (
        graphql_socket(stack, headers=viewer) as greedy,
        graphql_socket(stack, headers=await stack.auth()) as other,
    ):
        await greedy.init()
        for n in range(2):
            await greedy.subscribe(f"s{n}", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 2)
        await greedy.subscribe("s2", VERSION_LINKED, {"model": "m"})
        refused = await greedy.receive()
        assert refused["id"] == "s2" and "user:vic already holds 2 event subscriptions" in str(refused["payload"])
        await other.init()
        await other.subscribe("mine", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 3)  # alice's is served


async def test_one_principal_keeps_a_bounded_number_of_sockets_open_and_others_still_connect(
    settings: Settings,
) -> None:
    """Sockets are outside the in-flight bound: one key's script opening 1,000 took the process's connections."""
    async with Stack(replace(settings, max_sockets_per_principal=3)) as stack, AsyncExitStack() as sockets:
        assert stack.client is not None
        per_principal = stack.client.server.app[SOCKETS_PER_PRINCIPAL]
        admin = await stack.key("user:alice")  # an installation admin holds no more than anyone
        held = [await sockets.enter_async_context(graphql_socket(stack)) for _ in range(3)]
        for socket in held:
            assert (await socket.init({"apiKey": admin}))["type"] == "connection_ack"
        async with graphql_socket(stack) as one_more:
            refused = await one_more.init({"apiKey": await stack.key("user:alice", "viewer")})  # another key of hers
        assert refused["code"] == 4429
        assert refused["reason"] == (
            "this principal holds 3 open sockets, the most allowed: close one (--max-sockets-per-principal)"
        )
        async with graphql_socket(stack) as others:  # another principal is not held back
            assert (await others.init({"apiKey": await stack.key("user:bob", "viewer")}))["type"] == "connection_ack"
            await others.subscribe("mine", VERSION_LINKED, {"model": "m"})
            await log_readers_reach(stack, 1)

        await held[0].ws.close()  # a closed socket frees its place
        await until(lambda: per_principal.held("user:alice") == 2)
        async with graphql_socket(stack) as again:
            assert (await again.init({"apiKey": admin}))["type"] == "connection_ack"


async def test_a_stuck_subscriber_holds_back_only_itself_and_its_reader_closes_with_its_socket(
    stack: Stack, event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # About 12 MB of events: more than the socket buffers between the API and a client that stopped reading,
    # so the API's sends to it block.
    loader = Actor(kind="service", id="load")
    for first in range(0, 10_000, 500):
        await event_log.append(
            [
                Envelope.new(
                    RunStarted(entity="acme", project="load", run_id=f"r{n}", config={"pad": "x" * 1000}),
                    stream=f"run:acme/load/r{n}",
                    actor=loader,
                )
                for n in range(first, first + 500)
            ]
        )
    async with (
        graphql_socket(stack, headers=await stack.auth()) as stuck,
        graphql_socket(stack, headers=await stack.auth()) as ui,
    ):
        await stuck.init()
        await stuck.subscribe(
            "everything", 'subscription { events(fromNow: false, types: ["runs.run_started"]) { payload } }'
        )
        await ui.init()
        await ui.subscribe("runs", 'subscription { events(entity: "globex") { stream } }')
        await log_readers_reach(stack, 2)
        await sends_block(stack)

        await event_log.append(
            [Envelope.new(RunStarted(entity="globex", project="p", run_id="r"), stream="run:globex/p/r", actor=loader)]
        )
        assert await ui.next_events("runs", 1) == [{"stream": "run:globex/p/r"}]
        assert (await stack.graphql("{ viewer { id } }"))["data"]["viewer"]["id"] == "user:alice"
        await ui.ws.close()
        await log_readers_reach(stack, 1)
    # The stuck one went away while the API was blocked sending to it: its reader is closed all the same, and
    # that is an ordinary end, no fault of the server's.
    await log_readers_reach(stack, 0)
    assert faults_logged(caplog) == []


def faults_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The broker's client logs its own retries at ERROR (a fresh topic's group coordinator not ready yet).
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("aiokafka")]


FOLLOW_ANYTHING = {"query": "subscription { events { id } }"}
MALFORMED_BEFORE_INIT = ["[]", "42", "null", '"x"', '{"type": 7}']
MALFORMED_AFTER_INIT = [
    json.dumps(frame)
    for frame in [
        {"type": "subscribe", "id": "1", "payload": "not an object"},
        {"type": "subscribe", "id": "1"},
        {"type": "subscribe", "id": ["1"], "payload": FOLLOW_ANYTHING},
        {"type": "subscribe", "id": "", "payload": FOLLOW_ANYTHING},
        {"type": "subscribe", "id": 1, "payload": FOLLOW_ANYTHING},
        {"type": "subscribe", "id": "1", "payload": {**FOLLOW_ANYTHING, "variables": ["x"]}},
        {"type": "subscribe", "id": "1", "payload": {**FOLLOW_ANYTHING, "operationName": {"x": 1}}},
        {"type": "complete", "id": {"a": 1}},
        {"type": "complete", "id": ["1"]},
    ]
]


async def test_a_frame_that_is_no_protocol_message_closes_its_socket_as_a_bad_one_and_logs_no_fault(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may open a socket and send anything, before any key: the log holds the server's faults, not theirs."""
    caplog.set_level(logging.WARNING)
    for frame in MALFORMED_BEFORE_INIT + MALFORMED_AFTER_INIT:
        async with graphql_socket(stack) as socket:
            if frame in MALFORMED_AFTER_INIT:
                assert (await socket.init({"apiKey": await stack.key("user:vic", "viewer")}))[
                    "type"
                ] == "connection_ack"
            await socket.ws.send_str(frame)
            closed = await socket.receive(timeout_s=10)
            assert (closed["type"], closed["code"]) == ("closed", 4400), frame
    assert faults_logged(caplog) == []

    async with graphql_socket(stack, headers=await stack.auth()) as socket:  # well-formed frames are served as ever
        await socket.init()
        await socket.subscribe("fine", VERSION_LINKED, {"model": "m"})
        await log_readers_reach(stack, 1)


async def test_a_key_revoked_while_its_socket_follows_the_log_ends_the_socket_as_an_ordinary_end(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an incident: the server did nothing wrong, and a fault logged at every revocation hides the real ones."""
    caplog.set_level(logging.WARNING)
    issued = await stack.graphql(
        'mutation { issueApiKey(input: {principalKind: USER, principalId: "zoe", role: VIEWER}) { key id } }'
    )
    zoe = issued["data"]["issueApiKey"]
    async with graphql_socket(stack) as socket:
        assert (await socket.init({"apiKey": zoe["key"]}))["type"] == "connection_ack"
        await socket.subscribe("links", VERSION_LINKED, {"model": "m"})
        await socket.subscribe("moves", ALIAS_MOVED, {"model": "m"})
        await log_readers_reach(stack, 2)
        revoked = await stack.graphql(
            "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id } }", {"id": zoe["id"]}
        )
        assert "errors" not in revoked, revoked
        closed = await socket.receive()
        assert (closed["type"], closed["code"]) == ("closed", 4403)
    await log_readers_reach(stack, 0)
    assert faults_logged(caplog) == []
