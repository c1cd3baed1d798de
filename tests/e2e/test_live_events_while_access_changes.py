"""Live events follow who may read what while a subscription starts and while it replays: a team made private,
a grant or a key revoked at any moment reach every subscription they concern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.live_events import graphql_socket, log_readers_reach
from support.stack import Stack
from support.story import START_RUN
from support.waiting import wait_until

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog
from modelreg.events.runs import RunStarted
from modelreg.graphql import subscriptions
from modelreg.services.http.api import APP

# Kafka keeps no order between partitions: a run could be read before the change on another partition that came
# first (a limit of its own). What is told here is where a subscription starts, the same on both logs.
pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

ADMIN, OUTSIDER = "user:ada", "user:otto"
SET_VISIBILITY = """mutation($s: String!, $v: Visibility!) {
  setVisibility(input: {scope: $s, visibility: $v}) { scope visibility }
}"""
ISSUE_KEY = """mutation($i: String!) {
  issueApiKey(input: {principalKind: USER, principalId: $i, role: MEMBER}) { key id }
}"""
GRANT = "mutation($p: String!, $s: String!) { grantRole(input: {principal: $p, scope: $s, role: VIEWER}) { role } }"
REVOKE_GRANT = "mutation($p: String!, $s: String!) { revokeRole(input: {principal: $p, scope: $s}) { role } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id } }"
RUNS_STARTED = 'subscription { events(types: ["runs.run_started"]) { stream } }'
REPLAYED_RUNS = 'subscription { events(fromNow: false, types: ["runs.run_started"]) { stream } }'
# About 12 MB of events: more than the socket buffers between the API and a client hold, so that most of a replay
# is still to be sent when its reader is revoked.
HISTORY = 10_000


class ChangedAsTheReaderIsPositioned:
    """The log as the API sees it, on which `change` happens at the worst moment for a subscriber: after the
    subscription read the log's end to wait for the identity read model (the first read of the end once armed),
    before its log reader is positioned (the next one)."""

    def __init__(self, log: EventLog, change: Callable[[], Awaitable[None]]) -> None:
        self._log = log
        self._change = change
        self.reads_of_the_end = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def end_positions(self) -> dict[int, int]:
        self.reads_of_the_end += 1
        if self.reads_of_the_end == 2:
            await self._change()
        return await self._log.end_positions()


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables, actor=ADMIN)
    assert "errors" not in answer, answer
    return answer["data"]


async def _start_run(stack: Stack, entity: str, run_id: str) -> None:
    await ok(stack, START_RUN, {"input": {"entity": entity, "project": "den", "runId": run_id}})


async def test_a_team_made_private_as_an_outsider_subscribes_stays_hidden_from_it(stack: Stack) -> None:
    assert stack.client is not None
    application = stack.client.server.app[APP]
    api_log = application.log
    await _start_run(stack, "lynx", "while-public")  # lynx is a public team until the outsider subscribes

    async def lynx_goes_private() -> None:
        await ok(stack, SET_VISIBILITY, {"s": "entity:lynx", "v": "PRIVATE"})

    async with graphql_socket(stack) as outsider:
        assert (await outsider.init({"apiKey": await stack.key(OUTSIDER, "member")}))["type"] == "connection_ack"
        staged = application.log = ChangedAsTheReaderIsPositioned(api_log, lynx_goes_private)  # type: ignore[assignment]
        try:
            await outsider.subscribe("runs", RUNS_STARTED)
            await log_readers_reach(stack, 1)
        finally:
            application.log = api_log
        assert staged.reads_of_the_end >= 2

        await _start_run(stack, "lynx", "secret-run")
        await _start_run(stack, "acme", "public-run")  # last: anything let through by mistake comes before it
        assert await outsider.next_events("runs", 1) == [{"stream": "run:acme/den/public-run"}]


async def test_a_key_revoked_as_its_socket_subscribes_closes_that_socket(stack: Stack) -> None:
    assert stack.client is not None
    application = stack.client.server.app[APP]
    api_log = application.log
    otto = (await ok(stack, ISSUE_KEY, {"i": "otto"}))["issueApiKey"]

    async def the_key_is_revoked() -> None:
        await ok(stack, REVOKE_KEY, {"id": otto["id"]})

    async with graphql_socket(stack) as outsider:
        assert (await outsider.init({"apiKey": otto["key"]}))["type"] == "connection_ack"
        staged = application.log = ChangedAsTheReaderIsPositioned(api_log, the_key_is_revoked)  # type: ignore[assignment]
        try:
            await outsider.subscribe("runs", RUNS_STARTED)

            async def revoked_as_it_subscribed() -> bool:
                return staged.reads_of_the_end >= 2

            # Not until its reader is reading: the socket may be closed before that is seen.
            await wait_until(revoked_as_it_subscribed, timeout_s=30)
        finally:
            application.log = api_log
        await _start_run(stack, "acme", "public-run")  # what the socket would be sent, were it still open
        closed = await outsider.receive(timeout_s=10)
        assert closed["type"] == "closed" and closed["code"] == 4403, closed


async def _history(event_log: EventLog, entity: str) -> None:
    loader = Actor(kind="service", id="load")
    for first in range(0, HISTORY, 500):
        await event_log.append(
            [
                Envelope.new(
                    RunStarted(entity=entity, project="den", run_id=f"r{n}", config={"pad": "x" * 1000}),
                    stream=f"run:{entity}/den/r{n}",
                    actor=loader,
                )
                for n in range(first, first + 500)
            ]
        )


async def test_a_key_revoked_while_its_socket_replays_the_log_ends_the_replay_there(
    stack: Stack, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions, "LOOK_UP_WHILE_REPLAYING_EVERY_S", 0.0)  # at once: no waiting on a clock
    await _history(event_log, "acme")
    otto = (await ok(stack, ISSUE_KEY, {"i": "otto"}))["issueApiKey"]
    async with graphql_socket(stack) as replaying:
        assert (await replaying.init({"apiKey": otto["key"]}))["type"] == "connection_ack"
        await replaying.subscribe("history", REPLAYED_RUNS)
        await replaying.next_events("history", 1)
        await ok(stack, REVOKE_KEY, {"id": otto["id"]})
        received = 1
        while (message := await replaying.receive())["type"] == "next":
            received += 1
    assert message["type"] == "closed" and message["code"] == 4403, message
    assert received < HISTORY  # what was on its way when the key was revoked, not the rest of the history


async def test_a_member_removed_from_a_private_team_during_a_replay_is_sent_no_more_of_its_history(
    stack: Stack, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions, "LOOK_UP_WHILE_REPLAYING_EVERY_S", 0.0)
    await ok(stack, SET_VISIBILITY, {"s": "entity:lynx", "v": "PRIVATE"})
    await ok(stack, GRANT, {"p": "user:mia", "s": "entity:lynx"})
    await _history(event_log, "lynx")
    async with graphql_socket(stack) as member:
        assert (await member.init({"apiKey": await stack.key("user:mia", "member")}))["type"] == "connection_ack"
        await member.subscribe("history", REPLAYED_RUNS)
        await member.next_events("history", 1)
        await ok(stack, REVOKE_GRANT, {"p": "user:mia", "s": "entity:lynx"})
        await _start_run(stack, "acme", "public-run")
        lynx_runs = 1
        while (await member.next_events("history", 1))[0]["stream"] != "run:acme/den/public-run":
            lynx_runs += 1
    assert lynx_runs < HISTORY  # what was on its way when mia was removed, not the rest of lynx's history
