"""Time is the server's: every action records when the server received it. A client may say when a run's
own command happened (an offline run, synced later): that claim is kept beside the server's time, bounded,
and never moves a link, an audit filter or the history into the past."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from support.stack import Stack

START = "mutation($i: StartRunInput!) { startRun(input: $i) { startedAt startedOfflineAt } }"
METRICS = """mutation($r: String!, $c: ID, $t: DateTime) {
  logMetrics(input: {entity: "acme", project: "nature", runId: $r, rows: [{step: 0, values: {loss: 1.0}}],
             commandId: $c, occurredAt: $t}) }"""
FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { finishedAt finishedOfflineAt } }"
LOG = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id createdAt } }"
LINK = """mutation($id: ID!, $c: ID, $t: DateTime) {
  linkArtifactVersion(input: {registeredModel: "nature-classification", artifactVersionId: $id, commandId: $c,
  occurredAt: $t}) {
    version linkedAt } }"""
ALIAS = """mutation($id: ID!) {
  addAlias(input: {registeredModel: "nature-classification", artifactVersionId: $id, alias: "production",
           occurredAt: "2017-01-01T00:00:00+00:00"}) { version } }"""
AUDIT = """query($since: DateTime, $until: DateTime) { auditLog(since: $since, until: $until, first: 500) {
  items { action occurredAt recordedOfflineAt details } } }"""
HISTORY = (
    '{ registeredModel(name: "nature-classification") { history { items { action occurredAt recordedOfflineAt } } } }'
)

IN_2017 = datetime(2017, 3, 1, 9, 30, tzinfo=UTC)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def claimed(when: datetime) -> dict[str, str]:
    return {"commandId": str(uuid.uuid4()), "occurredAt": when.isoformat()}


def refusal(answer: dict[str, Any]) -> tuple[str, str]:
    (error,) = answer["errors"]
    return error["extensions"]["code"], error["message"]


def messages(answer: dict[str, Any]) -> str:
    return " ".join(e["message"] for e in answer["errors"])


async def actions(stack: Stack) -> list[dict[str, Any]]:
    items = (await stack.graphql(AUDIT, {}))["data"]["auditLog"]["items"]
    return [r for r in items if not r["action"].startswith("identity.")]  # the test's API keys aside


async def a_logged_version(stack: Stack) -> str:
    fields = {"entity": "acme", "project": "nature", "name": "classifier", "type": "model", "files": []}
    return (await stack.graphql(LOG, {"i": fields}))["data"]["logArtifactVersion"]["id"]


async def test_a_backdated_link_is_refused_and_a_link_is_dated_when_the_server_received_it(stack: Stack) -> None:
    version = await a_logged_version(stack)
    before = await actions(stack)

    forged = await stack.graphql(LINK, {"id": version, "c": str(uuid.uuid4()), "t": IN_2017.isoformat()})
    code, message = refusal(forged)
    assert code == "INVALID_INPUT"
    assert "a run's own commands" in message and "send it without occurredAt" in message
    assert await actions(stack) == before  # nothing reached the log

    received_after = datetime.now(UTC)
    linked = (await stack.graphql(LINK, {"id": version}))["data"]["linkArtifactVersion"]
    assert at(linked["linkedAt"]) >= received_after
    # Nor can an alias move or a card change claim a time: those mutations take none.
    assert "occurredAt" in messages(await stack.graphql(ALIAS, {"id": version}))
    history = (await stack.graphql(HISTORY))["data"]["registeredModel"]["history"]["items"]
    assert [(r["action"], r["recordedOfflineAt"]) for r in history] == [("registry.version_linked", None)]
    assert at(history[0]["occurredAt"]) >= received_after


async def test_a_version_logged_outside_a_run_may_not_claim_a_time(stack: Stack) -> None:
    fields = {"entity": "acme", "project": "nature", "name": "classifier", "type": "model", "files": []}
    code, message = refusal(await stack.graphql(LOG, {"i": {**fields, **claimed(IN_2017)}}))
    assert code == "INVALID_INPUT" and "log artifact version" in message


async def test_a_runs_own_claimed_time_is_kept_beside_the_servers_and_audit_filters_go_by_the_servers(
    stack: Stack,
) -> None:
    received_after = datetime.now(UTC)
    run = {"entity": "acme", "project": "nature", "runId": "laptop-1"}
    started = (await stack.graphql(START, {"i": {**run, **claimed(IN_2017)}}))["data"]["startRun"]
    assert at(started["startedOfflineAt"]) == IN_2017 and at(started["startedAt"]) >= received_after
    five_minutes_in = (IN_2017 + timedelta(minutes=5)).isoformat()
    logged = await stack.graphql(METRICS, {"r": "laptop-1", "c": str(uuid.uuid4()), "t": five_minutes_in})
    assert "errors" not in logged
    finish = {**run, **claimed(IN_2017 + timedelta(hours=1))}
    finished = (await stack.graphql(FINISH, {"i": finish}))["data"]["finishRun"]
    assert at(finished["finishedOfflineAt"]) == IN_2017 + timedelta(hours=1)
    assert at(finished["finishedAt"]) >= at(started["startedAt"])

    # "What happened in 2017?" finds nothing: the registry received all of it today.
    year = {"since": IN_2017.isoformat(), "until": (IN_2017 + timedelta(days=365)).isoformat()}
    in_2017 = await stack.graphql(AUDIT, year)
    assert in_2017["data"]["auditLog"]["items"] == []
    today = (await stack.graphql(AUDIT, {"since": received_after.isoformat()}))["data"]["auditLog"]["items"]
    mine = [r for r in reversed(today) if r["details"].get("run_id") == "laptop-1"]  # oldest first
    on_the_run = [(r["action"], at(r["recordedOfflineAt"])) for r in mine]
    assert on_the_run == [
        ("runs.run_started", IN_2017),
        ("runs.metrics_logged", IN_2017 + timedelta(minutes=5)),
        ("runs.run_finished", IN_2017 + timedelta(hours=1)),
    ]
    assert all(at(r["occurredAt"]) >= received_after for r in today)


async def test_a_claimed_time_before_the_runs_start_or_in_the_future_is_refused(stack: Stack) -> None:
    offline = {"entity": "acme", "project": "nature", "runId": "laptop-2"}
    await stack.graphql(START, {"i": {**offline, **claimed(IN_2017)}})
    day_before = (IN_2017 - timedelta(days=1)).isoformat()
    code, message = refusal(await stack.graphql(METRICS, {"r": "laptop-2", "c": str(uuid.uuid4()), "t": day_before}))
    assert code == "INVALID_INPUT" and "before run acme/nature/laptop-2 started" in message
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    finish = {**offline, "commandId": str(uuid.uuid4()), "occurredAt": future}
    code, message = refusal(await stack.graphql(FINISH, {"i": finish}))
    assert code == "INVALID_INPUT" and "in the future" in message

    # A run started online starts when the server received it: its commands cannot claim to be older.
    online = {"entity": "acme", "project": "nature", "runId": "online-1"}
    await stack.graphql(START, {"i": online})
    code, message = refusal(await stack.graphql(FINISH, {"i": {**online, **claimed(IN_2017)}}))
    assert code == "INVALID_INPUT" and "before run acme/nature/online-1 started" in message
    records = [r for r in await actions(stack) if r["details"].get("run_id") in ("laptop-2", "online-1")]
    assert sorted(r["action"] for r in records) == ["runs.run_started", "runs.run_started"]
