"""`modelreg rebuild registry` beside a running server: the write side authorizes protected aliases from the registry
read model, so while the registry is rebuilt a member still may not move `production`, and nobody sees it
unprotected or the model gone."""

from __future__ import annotations

import asyncio

import pytest
from support.history import registry_history
from support.stack import Stack
from support.story import ADD_ALIAS, LINK, LOG_VERSION, version_input

from modelreg.events.log import EventLog
from modelreg.services import rebuild as rebuilding

PROTECT = (
    "mutation($m: String!, $a: String!) { protectAlias(input: {registeredModel: $m, alias: $a}) { protectedAliases } }"
)
MODEL = '{ registeredModel(name: "nature-classification") { protectedAliases } }'


async def test_a_member_may_not_move_production_while_the_registry_is_rebuilt(
    stack: Stack, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = []
    for content in (b"first", b"second"):
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", content)})
        ids.append(logged["data"]["logArtifactVersion"]["id"])
        await stack.graphql(LINK, {"model": "nature-classification", "id": ids[-1]})
    await stack.graphql(ADD_ALIAS, {"model": "nature-classification", "id": ids[0], "alias": "production"})
    await event_log.append(registry_history(1500))  # the team's work since, before production was protected
    await stack.graphql(PROTECT, {"m": "nature-classification", "a": "production"})
    member = await stack.key("user:mia", role="member")

    monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 25)  # batches small enough for requests between them
    rebuild = asyncio.create_task(rebuilding.rebuild(stack.settings, "registry"))
    answers: list[str] = []
    while not rebuild.done():
        moved = await stack.graphql(
            ADD_ALIAS, {"model": "nature-classification", "id": ids[1], "alias": "production"}, key=member
        )
        error = (moved.get("errors") or [{}])[0]
        answers.append(error.get("extensions", {}).get("code", "MOVED"))
        seen = await stack.graphql(MODEL, key=member)
        if (seen["data"]["registeredModel"] or {}).get("protectedAliases") != ["production"]:
            answers.append("production unprotected")
    await rebuild

    assert answers and set(answers) == {"FORBIDDEN"}
    production = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { versions { items { version aliases } } } }'
    )
    assert production["data"]["registeredModel"]["versions"]["items"] == [
        {"version": "v0", "aliases": ["production"]},
        {"version": "v1", "aliases": []},
    ]
