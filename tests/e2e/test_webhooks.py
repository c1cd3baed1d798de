"""Webhooks: signed payloads to a real local receiver, retries when it fails, and a delivery log."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from support.command_line import command_line
from support.live_events import graphql_socket
from support.stack import Stack
from support.story import LINK, LOG_VERSION, version_input
from support.waiting import wait_until

from modelreg.services import rebuild as rebuilding
from modelreg.services.automations.webhook_signing import verified_v2
from modelreg.services.settings import Settings

CREATE = """mutation($n: String!, $t: GenericScalar!, $a: GenericScalar!) {
  createAutomation(input: {name: $n, trigger: $t, action: $a}) { automation { id } webhookSecret }
}"""
DELIVERIES = """query($id: ID!) { automation(id: $id) {
  firings { items { status detail } } deliveries { items { attempt statusCode error } } } }"""


class Receiver:
    """A real HTTP server that answers `failures` times with 500, then 200."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if len(self.received) <= self.failures:
            return web.Response(status=500, text="down for maintenance")
        return web.Response(status=204)


@pytest.fixture
async def receiver_url() -> AsyncIterator[tuple[Receiver, Receiver, str]]:
    ok, flaky = Receiver(), Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/ok", ok.handle)
    app.router.add_post("/flaky", flaky.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield ok, flaky, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _webhook(stack: Stack, url: str, trigger: dict, name: str = "tell ci", **action: Any) -> dict:
    """An automation calling the local receiver at `url` (a private address: allowed, as an admin may)."""
    webhook = {"kind": "webhook", "url": url, "allow_private_network": True, **action}
    created = await stack.graphql(CREATE, {"n": name, "t": trigger, "a": webhook})
    return created["data"]["createAutomation"]


async def _linked_with_alias(stack: Stack, alias: str) -> str:
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"weights")})
    version_id = logged["data"]["logArtifactVersion"]["id"]
    await stack.graphql(
        LINK, {"model": "nature-classification", "id": version_id, "aliases": [alias]}, actor="user:carol"
    )
    return version_id


async def test_a_webhook_gets_a_signed_payload_filled_from_the_event(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    ok, _, base = receiver_url
    payload = {
        "event": "${event_type}",
        "by": "${actor}",
        "model": "${registered_model}",
        "alias": "${alias}",
        "version": "${artifact_ref}",
    }
    created = await _webhook(stack, f"{base}/ok", {"event": "alias_added", "alias_pattern": "prod.*"}, payload=payload)
    secret = created["webhookSecret"]

    await _linked_with_alias(stack, "staging")  # does not match the pattern
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(ok, 1))

    ((headers, body),) = ok.received
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Modelreg-Signature"] == expected
    assert json.loads(body) == {
        "event": "registry.alias_added",
        "by": "user:carol",
        "model": "nature-classification",
        "alias": "production",
        "version": "acme/nature/classifier:v0",
    }


async def test_a_webhook_without_a_payload_gets_what_the_firing_knows(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # It sent `{}`: the receiver could not tell which model, version or actor the call was about.
    ok, _, base = receiver_url
    await _webhook(stack, f"{base}/ok", {"event": "alias_added"})
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(ok, 1))

    ((_, body),) = ok.received
    sent = json.loads(body)
    assert {k: sent[k] for k in ("event_type", "actor", "registered_model", "alias", "artifact_ref")} == {
        "event_type": "registry.alias_added",
        "actor": "user:carol",
        "registered_model": "nature-classification",
        "alias": "production",
        "artifact_ref": "acme/nature/classifier:v0",
    }
    # Each firing is retried on its own, so an older one may arrive after a newer one: its time orders them.
    assert datetime.fromisoformat(sent["occurred_at"]).tzinfo is not None


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


async def test_a_failing_receiver_gets_retries_and_every_attempt_is_in_the_delivery_log(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    _, flaky, base = receiver_url
    created = await _webhook(stack, f"{base}/flaky", {"event": "alias_added"}, payload={"alias": "${alias}"})
    automation_id = created["automation"]["id"]

    await _linked_with_alias(stack, "production")

    async def delivered() -> bool:
        firings = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
        return bool(firings) and firings[0]["status"] == "DELIVERED"

    await wait_until(delivered, timeout_s=30)
    log = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["deliveries"]["items"]
    assert [(d["attempt"], d["statusCode"]) for d in reversed(log)] == [(1, 500), (2, 500), (3, 204)]
    assert len({h["X-Modelreg-Delivery"] for h, _ in flaky.received}) == 1  # one delivery id: receivers can dedupe


async def test_each_attempt_is_signed_with_its_delivery_id_and_its_time(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # The body-only signature let a captured delivery be replayed under another delivery id, or days later.
    _, flaky, base = receiver_url
    created = await _webhook(stack, f"{base}/flaky", {"event": "alias_added"}, payload={"alias": "${alias}"})
    before = time.time()
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(flaky, 3), timeout_s=30)

    secret = created["webhookSecret"]
    for headers, body in flaky.received:
        v2, delivery = headers["X-Modelreg-Signature-V2"], headers["X-Modelreg-Delivery"]
        assert verified_v2(secret, v2, delivery, body, now=time.time())
        assert not verified_v2(secret, v2, delivery + "0", body, now=time.time())
        assert before - 1 <= int(v2.split(",")[0].removeprefix("t=")) <= time.time()
        assert (
            headers["X-Modelreg-Signature"] == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        )


ROTATE = """mutation($i: RotateWebhookSecretInput!) {
  rotateWebhookSecret(input: $i) { automation { id } webhookSecret previousSignsUntil } }"""


async def test_a_rotated_secret_signs_at_once_and_the_previous_one_beside_it_until_the_receiver_switched(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # A leaked secret could only be replaced by deleting the automation, its history with it, and making another.
    ok, _, base = receiver_url
    created = await _webhook(stack, f"{base}/ok", {"event": "alias_added"}, payload={"alias": "${alias}"})
    hook, first = created["automation"]["id"], created["webhookSecret"]

    rotated = (await stack.graphql(ROTATE, {"i": {"id": hook, "keepPreviousS": 3600}}))["data"]["rotateWebhookSecret"]
    second = rotated["webhookSecret"]
    assert second != first and rotated["previousSignsUntil"] is not None
    await _linked_with_alias(stack, "staging")
    await wait_until(lambda: _count(ok, 1))
    headers, body = ok.received[-1]
    v2, delivery = headers["X-Modelreg-Signature-V2"], headers["X-Modelreg-Delivery"]
    assert verified_v2(second, v2, delivery, body, now=time.time())
    assert verified_v2(first, v2, delivery, body, now=time.time())  # not switched over yet
    assert headers["X-Modelreg-Signature"] == "sha256=" + hmac.new(second.encode(), body, hashlib.sha256).hexdigest()

    # Leaked: the previous one signs nothing from now on.
    leaked = (await stack.graphql(ROTATE, {"i": {"id": hook, "keepPreviousS": 0}}))["data"]["rotateWebhookSecret"]
    third = leaked["webhookSecret"]
    assert leaked["previousSignsUntil"] is None and third not in (first, second)
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(ok, 2))
    headers, body = ok.received[-1]
    v2, delivery = headers["X-Modelreg-Signature-V2"], headers["X-Modelreg-Delivery"]
    assert v2.count("v1=") == 1 and verified_v2(third, v2, delivery, body, now=time.time())
    assert not verified_v2(second, v2, delivery, body, now=time.time())

    # Only its creator rotates it (the secret is shown to whoever does); the audit log has each rotation.
    other = await stack.graphql(ROTATE, {"i": {"id": hook}}, key=await stack.key("user:root", role="admin"))
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    audit = await stack.graphql('{ auditLog(actions: ["automations.webhook_secret_rotated"]) { items { details } } }')
    assert [r["details"]["secret_generation"] for r in audit["data"]["auditLog"]["items"]] == [3, 2]


RETRY = """mutation($i: RetryFiringInput!) { retryFiring(input: $i) { eventId status retries } }"""
FIRINGS_WITH_IDS = """query($id: ID!) { automation(id: $id) { firings { items { eventId status detail retries } } } }"""


async def test_a_firing_given_up_is_delivered_again_on_retry_under_the_same_delivery_id(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # A receiver down for longer than a webhook's attempts lost the call for good: nothing could send it again.
    _, flaky, base = receiver_url
    flaky.failures = 1
    automation_id = (await _webhook(stack, f"{base}/flaky", {"event": "alias_added"}, max_attempts=1))["automation"][
        "id"
    ]
    await _linked_with_alias(stack, "production")

    async def firing() -> dict:
        return (await stack.graphql(FIRINGS_WITH_IDS, {"id": automation_id}))["data"]["automation"]["firings"]["items"][
            0
        ]

    await wait_until(lambda: _status_is(firing, "FAILED"), timeout_s=30)
    given_up = await firing()
    assert given_up["detail"] == (
        f"gave up after 1 attempt (the last: answered 500): once the receiver answers, send it again with "
        f"retryFiring (modelreg automation retry {automation_id} {given_up['eventId']})"
    )

    # From the command line, as an operator would once the receiver is back.
    cli = await command_line(stack)
    listed = await cli("automation", "firings", automation_id, "--status", "failed")
    assert listed.startswith(f"{given_up['eventId']}  failed     registry.alias_added  by user:carol at ")
    assert listed.endswith(f"  {given_up['detail']}\n")
    retried = await cli("automation", "retry", automation_id, given_up["eventId"])
    assert retried == f"firing for event {given_up['eventId']} pending again (retry 1)\n"
    await wait_until(lambda: _status_is(firing, "DELIVERED"), timeout_s=30)
    log = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["deliveries"]["items"]
    assert [(d["attempt"], d["statusCode"]) for d in reversed(log)] == [(1, 500), (2, 204)]
    assert len({h["X-Modelreg-Delivery"] for h, _ in flaky.received}) == 1

    again = await stack.graphql(RETRY, {"i": {"id": automation_id, "eventId": given_up["eventId"]}})
    assert "was delivered" in again["errors"][0]["message"]


async def _status_is(firing: Any, status: str) -> bool:
    return (await firing())["status"] == status


TAG_MODEL = "mutation($m: String!, $t: String!) { tagRegisteredModel(input: {registeredModel: $m, tag: $t}) { name } }"
TAG_VERSION = "mutation($r: String!, $t: String!) { tagArtifactVersion(input: {ref: $r, tag: $t}) { version } }"


async def test_a_firing_whose_event_lacks_a_variable_the_action_names_fails_saying_so(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # tag_added gives artifact_ref for a version's tag, not for a registered model's: "${artifact_ref}" was sent
    # as written.
    ok, _, base = receiver_url
    created = await _webhook(stack, f"{base}/ok", {"event": "tag_added"}, payload={"v": "${artifact_ref}"})
    automation_id = created["automation"]["id"]
    await _linked_with_alias(stack, "staging")
    await stack.graphql(TAG_MODEL, {"m": "nature-classification", "t": "golden"})
    await stack.graphql(TAG_VERSION, {"r": "acme/nature/classifier:v0", "t": "golden"})

    await wait_until(lambda: _delivered_all(stack, automation_id, events=2))
    firings = (await stack.graphql(FIRINGS, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
    assert [(f["status"], f["detail"]) for f in firings] == [
        ("DELIVERED", None),
        (
            "FAILED",
            "not carried out: its event gives no artifact_ref (a registry.model_tagged), which the action names: "
            "narrow the trigger to the events that do (a collection or entity for versions' tags, a "
            "registered_model for models')",
        ),
    ]
    assert [json.loads(body) for _, body in ok.received] == [{"v": "acme/nature/classifier:v0"}]


async def test_a_webhook_whose_attempts_fail_with_a_long_error_is_given_up_and_recorded(stack: Stack) -> None:
    # A url of nearly 2,000 characters whose host has no DNS record yet (taken: the record may come with the
    # receiver's deploy). Each attempt's error repeated the host, passed the 2,000 characters an attempt's error may
    # hold, and could not be recorded: the firing stayed pending for ever, tried again every second with a traceback.
    host = ".".join(["a" * 60] * 32) + ".invalid"
    created = await stack.graphql(
        CREATE,
        {
            "n": "far away",
            "t": {"event": "alias_added"},
            "a": {"kind": "webhook", "url": f"http://{host}/", "max_attempts": 1},
        },
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    await _linked_with_alias(stack, "production")

    async def given_up() -> bool:
        firings = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
        return bool(firings) and firings[0]["status"] == "FAILED"

    await wait_until(given_up, timeout_s=30)
    log = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["deliveries"]["items"]
    [attempt] = log
    assert attempt["statusCode"] is None and attempt["error"].startswith(f"webhook host '{host[:100]}")
    assert len(attempt["error"]) <= 500


async def test_a_webhook_to_a_private_address_needs_an_admin(stack: Stack) -> None:
    member = await stack.key("user:mia", role="member")
    loopback = {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    refused = await stack.graphql(CREATE, {"n": "ssrf", "t": {"event": "alias_added"}, "a": loopback}, key=member)
    allowed_by_member = await stack.graphql(
        CREATE,
        {"n": "ssrf", "t": {"event": "alias_added"}, "a": {**loopback, "allow_private_network": True}},
        key=member,
    )

    assert (
        refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT" and "private" in refused["errors"][0]["message"]
    )
    assert allowed_by_member["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # A link-local address with a zone id was looked up as a name, found none, and taken as one to resolve later.
    zoned = {"kind": "webhook", "url": "http://[fe80::1%25eth0]/"}
    refused = await stack.graphql(CREATE, {"n": "ssrf", "t": {"event": "alias_added"}, "a": zoned}, key=member)
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", refused
    assert "points at fe80::1, a loopback, private" in refused["errors"][0]["message"]


SEEN = """{ automations { items { action deliveries { items { url } } } }
  auditLog(actions: ["automations.automation_created", "automations.webhook_attempted"]) { items { action details } }
}"""
LIVE = """subscription {
  events(fromNow: false, types: ["automations.automation_created", "automations.webhook_attempted"]) { payload }
}"""


async def test_a_webhooks_url_which_may_hold_a_token_is_read_whole_by_its_creator_only(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # A Slack url is a credential by itself: every viewer of what the automation watches read it whole.
    ok, _, base = receiver_url
    url = f"{base}/ok?token=SLACK-SECRET"
    await _webhook(stack, url, {"event": "alias_added"})  # by alice
    await _linked_with_alias(stack, "production")

    async def recorded() -> bool:
        return len((await stack.graphql(SEEN))["data"]["auditLog"]["items"]) == 2

    await wait_until(recorded, timeout_s=30)
    readers = {
        "its creator": await stack.key("user:alice"),
        "a viewer": await stack.key("user:vic", "viewer"),
        "another admin": await stack.key("user:ada"),
    }
    read, live = {}, {}
    for who, key in readers.items():
        answer = await stack.graphql(SEEN, key=key)
        (automation,) = answer["data"]["automations"]["items"]
        audit = {record["action"]: record["details"] for record in answer["data"]["auditLog"]["items"]}
        read[who] = [
            automation["action"]["url"],
            *[delivery["url"] for delivery in automation["deliveries"]["items"]],
            audit["automations.automation_created"]["action"]["url"],
            audit["automations.webhook_attempted"]["url"],
        ]
        async with graphql_socket(stack) as socket:
            await socket.init({"apiKey": key})
            await socket.subscribe("automations", LIVE)
            created, attempted = await socket.next_events("automations", 2)
        live[who] = [created["payload"]["action"]["url"], attempted["payload"]["url"]]

    assert read["its creator"] == [url] * 4 and live["its creator"] == [url] * 2
    for who in ("a viewer", "another admin"):
        assert read[who] == [f"{base}/…"] * 4 and live[who] == [f"{base}/…"] * 2, who


START = 'mutation($r: String!) { startRun(input: {entity: "acme", project: "nature", runId: $r}) { runId } }'
METRICS = (
    'mutation($r: String!, $rows: [MetricRowInput!]!) { logMetrics(input: {entity: "acme", project: "nature", '
    "runId: $r, rows: $rows}) }"
)
FINISH = (
    'mutation($r: String!, $s: FinishedRunState!) { finishRun(input: {entity: "acme", project: "nature", runId: $r, '
    "state: $s}) { state } }"
)
FIRINGS = "query($id: ID!) { automation(id: $id) { firings { items { status detail variables } } } }"


async def _automation(stack: Stack, base: str, trigger: dict, cooldown: float = 0) -> str:
    action = {
        "kind": "webhook",
        "url": f"{base}/ok",
        "allow_private_network": True,
        "payload": {"run": "${run_id}", "event": "${event_type}"},
    }
    query = """mutation($n: String!, $t: GenericScalar!, $a: GenericScalar!, $c: Float) {
      createAutomation(input: {name: $n, trigger: $t, action: $a, cooldownS: $c}) { automation { id } } }"""
    created = await stack.graphql(query, {"n": trigger["event"], "t": trigger, "a": action, "c": cooldown})
    return created["data"]["createAutomation"]["automation"]["id"]


async def _statuses(stack: Stack, automation_id: str) -> list[str]:
    firings = (await stack.graphql(FIRINGS, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
    return sorted(f["status"] for f in firings)


async def test_a_metric_crossing_a_threshold_and_a_failed_run_fire_their_automations(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    ok, _, base = receiver_url
    threshold = await _automation(
        stack,
        base,
        {"event": "metric_threshold", "project": "nature", "metric": "accuracy", "op": ">=", "threshold": 0.9},
    )
    failed = await _automation(stack, base, {"event": "run_finished", "run_state": "failed"})
    await stack.graphql(START, {"r": "r1"})
    await stack.graphql(START, {"r": "r2"})

    # Three batches of r1 past the threshold: the run crossed it once, so the automation fires once for it.
    for step, accuracy in enumerate((0.5, 0.95, 0.97, 0.92)):
        logged = await stack.graphql(METRICS, {"r": "r1", "rows": [{"step": step, "values": {"accuracy": accuracy}}]})
        assert "errors" not in logged, logged
    rows = [{"step": step, "values": {"accuracy": accuracy}} for step, accuracy in enumerate((0.7, 0.91, 0.96))]
    await stack.graphql(METRICS, {"r": "r2", "rows": rows})  # another run crossing fires again
    await stack.graphql(FINISH, {"r": "r1", "s": "FINISHED"})
    await stack.graphql(FINISH, {"r": "r2", "s": "FAILED"})

    await wait_until(lambda: _count(ok, 3))
    await stack.projected()
    assert sorted(json.loads(body)["event"] for _, body in ok.received) == [
        "runs.metrics_logged",
        "runs.metrics_logged",
        "runs.run_finished",
    ]
    # Each firing is closed by an event of its own, projected some time after the receiver got its call.
    await wait_until(lambda: _delivered_all(stack, threshold, events=2))
    await wait_until(lambda: _delivered_all(stack, failed))
    assert await _statuses(stack, threshold) == ["DELIVERED", "DELIVERED"]
    assert await _statuses(stack, failed) == ["DELIVERED"]
    (firing,) = (await stack.graphql(FIRINGS, {"id": failed}))["data"]["automation"]["firings"]["items"]
    assert firing["variables"]["run_id"] == "r2"
    crossings = (await stack.graphql(FIRINGS, {"id": threshold}))["data"]["automation"]["firings"]["items"]
    # What crossed, for a template to name: "${metric}", "${value}", "${step}" (the batch's point furthest past).
    assert sorted(
        (f["variables"]["run_id"], f["variables"]["metric"], f["variables"]["value"], f["variables"]["step"])
        for f in crossings
    ) == [("r1", "accuracy", 0.95, 1), ("r2", "accuracy", 0.96, 2)]


async def test_a_run_crossing_a_threshold_fires_even_when_another_teams_run_of_that_id_crossed_it_first(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # Once per run was once per run id: a run of that id elsewhere (in a private team, say) kept it from firing,
    # which told the automation's creator that such a run had crossed.
    ok, _, base = receiver_url
    threshold = await _automation(
        stack, base, {"event": "metric_threshold", "metric": "loss", "op": "<", "threshold": 1}
    )
    for entity in ("lynx", "acme"):
        fields = {"entity": entity, "project": "nature", "runId": "baseline"}
        await stack.graphql("mutation($i: StartRunInput!) { startRun(input: $i) { runId } }", {"i": fields})
        logged = await stack.graphql(
            "mutation($i: LogMetricsInput!) { logMetrics(input: $i) }",
            {"i": {**fields, "rows": [{"step": 0, "values": {"loss": 0.5}}]}},
        )
        assert "errors" not in logged, logged

    await wait_until(lambda: _delivered_all(stack, threshold, events=2))
    crossings = (await stack.graphql(FIRINGS, {"id": threshold}))["data"]["automation"]["firings"]["items"]
    assert sorted(f["variables"]["entity"] for f in crossings) == ["acme", "lynx"]


async def test_a_changed_automation_fires_on_its_new_trigger_and_keeps_its_history(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    ok, _, base = receiver_url
    automation_id = await _automation(stack, base, {"event": "run_finished", "run_state": "failed"})
    await stack.graphql(START, {"r": "r1"})
    await stack.graphql(FINISH, {"r": "r1", "s": "FAILED"})
    await wait_until(lambda: _delivered_all(stack, automation_id))

    change = """mutation($i: ChangeAutomationInput!) { changeAutomation(input: $i) { name trigger action enabled } }"""
    action = {"kind": "webhook", "url": f"{base}/ok", "allow_private_network": True, "payload": {"ok": "${run_id}"}}
    trigger = {"event": "run_finished", "run_state": "finished"}
    changed = await stack.graphql(
        change, {"i": {"id": automation_id, "name": "on success", "trigger": trigger, "action": action}}
    )
    assert changed["data"]["changeAutomation"]["name"] == "on success"
    assert changed["data"]["changeAutomation"]["trigger"] == trigger and changed["data"]["changeAutomation"]["enabled"]
    for run, state in (("r2", "FAILED"), ("r3", "FINISHED")):
        await stack.graphql(START, {"r": run})
        await stack.graphql(FINISH, {"r": run, "s": state})

    await wait_until(lambda: _count(ok, 2))
    await stack.projected()
    assert [json.loads(body) for _, body in ok.received] == [{"run": "r1", "event": "runs.run_finished"}, {"ok": "r3"}]
    assert await _statuses(stack, automation_id) == ["DELIVERED", "DELIVERED"]  # r1's firing is kept

    launch = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "nature",
        "source": {"kind": "image", "image": "python:3.12", "entry_point": ["python", "evaluate.py"]},
    }
    refused = await stack.graphql(
        change, {"i": {"id": automation_id, "name": "x", "trigger": trigger, "action": launch}}
    )
    assert refused["errors"][0]["message"].startswith("an automation's action stays a webhook")


async def _delivered_all(stack: Stack, automation_id: str, events: int = 1) -> bool:
    statuses = await _statuses(stack, automation_id)
    return len(statuses) >= events and "PENDING" not in statuses


async def test_an_automation_in_its_cooldown_records_the_event_as_skipped_which_stops_loops(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    ok, _, base = receiver_url
    automation_id = await _automation(stack, base, {"event": "run_finished"}, cooldown=3600)
    for run in ("r1", "r2", "r3"):
        await stack.graphql(START, {"r": run})
        await stack.graphql(FINISH, {"r": run, "s": "FINISHED"})
    # The cooldown is acme's: another team's run, within the hour, fires (and acme's activity is not shown to it
    # as a skipped firing).
    lynx = {"entity": "lynx", "project": "den", "runId": "l1"}
    await stack.graphql("mutation($i: StartRunInput!) { startRun(input: $i) { runId } }", {"i": lynx})
    await stack.graphql("mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }", {"i": lynx})

    await wait_until(lambda: _delivered_all(stack, automation_id, events=4))
    assert await _statuses(stack, automation_id) == ["DELIVERED", "DELIVERED", "SKIPPED", "SKIPPED"]
    assert sorted(json.loads(body)["run"] for _, body in ok.received) == ["l1", "r1"]


async def test_a_rebuild_of_the_trigger_projection_sends_no_webhook_again(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replayed, the projection records each past firing pending, and the AutomationFired that closed it comes
    # later on the log, or earlier on another partition: the runner sent every past webhook again.
    ok, _, base = receiver_url
    automation_id = await _automation(stack, base, {"event": "run_finished"})
    for run in ("r1", "r2", "r3"):
        await stack.graphql(START, {"r": run})
        await stack.graphql(FINISH, {"r": run, "s": "FINISHED"})
    await wait_until(lambda: _delivered_all(stack, automation_id, events=3))
    await stack.projected()

    monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 1)  # an event a transaction: the firings show pending a while
    await rebuilding.rebuild(stack.settings, "triggers")
    await stack.graphql(START, {"r": "r4"})
    await stack.graphql(FINISH, {"r": "r4", "s": "FINISHED"})  # carried out after any past one would be
    await wait_until(lambda: _delivered_all(stack, automation_id, events=4))

    assert sorted(json.loads(body)["run"] for _, body in ok.received) == ["r1", "r2", "r3", "r4"]
    # Every firing keeps its outcome. (Replayed from several partitions, a past firing's facts can come back empty:
    # the event that fired it may be applied before the automation's creation, on another partition.)
    assert await _statuses(stack, automation_id) == ["DELIVERED"] * 4


async def test_an_api_without_the_webhook_key_refuses_a_webhook_before_creating_it(settings: Settings) -> None:
    # Created, it could not be shown its secret: the caller was told to retry, and each retry made another live
    # automation. The key is an operator's setting: nothing to retry.
    async with Stack(dataclasses.replace(settings, webhook_secret_key=None)) as stack:
        action = {"kind": "webhook", "url": "https://hooks.example.com/x"}
        refused = await stack.graphql(CREATE, {"n": "hook", "t": {"event": "run_finished"}, "a": action})
        error = refused["errors"][0]
        assert error["extensions"]["code"] == "UNAVAILABLE" and "MODELREG_WEBHOOK_SECRET_KEY" in error["message"]
        assert error["extensions"]["retriable"] is False
        listed = await stack.graphql("{ automations { items { id } } }")
        assert listed["data"]["automations"]["items"] == []


ISSUE_KEY = """mutation($i: String!, $r: Role!, $s: [String!]) {
  issueApiKey(input: {principalKind: USER, principalId: $i, role: $r, scopes: $s}) { key id } }"""
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id } }"


async def _ops_webhook_delivered_once(stack: Stack, ok: Receiver, base: str) -> tuple[str, str]:
    """An automation user:ops created as an admin, to a private address, delivered once: its id, and ops's key's."""
    issued = (await stack.graphql(ISSUE_KEY, {"i": "ops", "r": "ADMIN"}))["data"]["issueApiKey"]
    action = {"kind": "webhook", "url": f"{base}/ok", "allow_private_network": True}
    created = await stack.graphql(
        CREATE, {"n": "tell ops", "t": {"event": "alias_added"}, "a": action}, key=issued["key"]
    )
    await _linked_with_alias(stack, "staging")
    await wait_until(lambda: _count(ok, 1), timeout_s=30)
    return created["data"]["createAutomation"]["automation"]["id"], issued["id"]


async def _closed_firings(stack: Stack, automation_id: str, n: int) -> dict[str, Any]:
    async def closed() -> bool:
        firings = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
        return len(firings) == n and all(f["status"] != "PENDING" for f in firings)

    await wait_until(closed, timeout_s=30)
    return (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]


@pytest.mark.parametrize("now", ["demoted", "revoked"])
async def test_an_admins_webhook_to_a_private_address_stops_reaching_it_once_its_creator_is_no_admin(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str], now: str
) -> None:
    # Only an admin may point a webhook at the server's own network; the automation went on reaching it after its
    # creator's admin key was revoked, alone or for a member's.
    ok, _, base = receiver_url
    automation_id, admin_key = await _ops_webhook_delivered_once(stack, ok, base)
    await stack.graphql(REVOKE_KEY, {"id": admin_key})
    if now == "demoted":
        await stack.graphql(ISSUE_KEY, {"i": "ops", "r": "MEMBER"})

    await _linked_with_alias(stack, "production")
    automation = await _closed_firings(stack, automation_id, 2)

    assert len(ok.received) == 1
    assert sorted(f["status"] for f in automation["firings"]["items"]) == ["DELIVERED", "FAILED"]
    failed = next(f for f in automation["firings"]["items"] if f["status"] == "FAILED")
    assert "allow_private_network" in failed["detail"] and "user:ops" in failed["detail"]
    refused = [d for d in automation["deliveries"]["items"] if d["statusCode"] is None]
    assert [d["error"] for d in refused] == [failed["detail"]]  # one attempt, recorded, none sent, none retried


async def test_a_creator_whose_admin_key_is_now_limited_to_a_team_reads_no_further_through_an_automation(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # Rights at firing time counted the role of each live key and not its limits: an admin key limited to acme
    # read a private model's events, and delivered them to a private address, as an unlimited admin's would.
    ok, _, base = receiver_url
    automation_id, admin_key = await _ops_webhook_delivered_once(stack, ok, base)
    await stack.graphql(
        'mutation { setVisibility(input: {scope: "model:nature-classification", visibility: PRIVATE}) { scope } }'
    )
    await stack.graphql(REVOKE_KEY, {"id": admin_key})
    await stack.graphql(ISSUE_KEY, {"i": "ops", "r": "ADMIN", "s": ["entity:acme"]})

    await _linked_with_alias(stack, "production")
    automation = await _closed_firings(stack, automation_id, 2)

    assert len(ok.received) == 1
    failed = next(f for f in automation["firings"]["items"] if f["status"] == "FAILED")
    assert "may not read model:nature-classification" in failed["detail"]


async def test_a_webhook_retrying_when_its_creator_is_demoted_stops_at_the_next_attempt(stack: Stack) -> None:
    # A firing's attempts go on for up to two hours: the creator's rights as they were at the first one carried every
    # later one to the private address.
    healed, received = False, []

    async def down_until_healed(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204 if healed else 503)

    app = web.Application()
    app.router.add_post("/hook", down_until_healed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        issued = (await stack.graphql(ISSUE_KEY, {"i": "ops", "r": "ADMIN"}))["data"]["issueApiKey"]
        action = {
            "kind": "webhook",
            "url": f"http://127.0.0.1:{port}/hook",
            "allow_private_network": True,
            "max_attempts": 12,  # 0.05 s apart at first, doubling: about 100 s in all
        }
        created = await stack.graphql(
            CREATE, {"n": "tell ops", "t": {"event": "alias_added"}, "a": action}, key=issued["key"]
        )
        automation_id = created["data"]["createAutomation"]["automation"]["id"]
        await _linked_with_alias(stack, "production")
        await wait_until(lambda: _at_least(received, 2), timeout_s=30)

        await stack.graphql(REVOKE_KEY, {"id": issued["id"]})
        await stack.graphql(ISSUE_KEY, {"i": "ops", "r": "MEMBER"})
        sent_before = len(received)
        healed = True
        automation = await _closed_firings(stack, automation_id, 1)
    finally:
        await runner.cleanup()

    [firing] = automation["firings"]["items"]
    assert firing["status"] == "FAILED" and "allow_private_network" in firing["detail"]
    assert len(received) <= sent_before + 1  # at most the attempt under way when the key was revoked
    assert automation["deliveries"]["items"][0]["error"] == firing["detail"]  # the newest: refused, recorded


async def _at_least(received: list[bytes], n: int) -> bool:
    return len(received) >= n


async def test_a_retrying_webhook_stops_once_switched_off_and_follows_a_corrected_url(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    # Switched off, a firing's retries went on for up to two hours; its url corrected, they kept calling the old host.
    ok, flaky, base = receiver_url
    flaky.failures = 1000
    change = """mutation($i: ChangeAutomationInput!) { changeAutomation(input: $i) { name } }"""
    switch = """mutation($i: SetAutomationEnabledInput!) { setAutomationEnabled(input: $i) { enabled } }"""
    trigger = {"event": "alias_added"}
    off = (await _webhook(stack, f"{base}/flaky", trigger, name="switched off", max_attempts=12))["automation"]["id"]
    moved = (await _webhook(stack, f"{base}/flaky", trigger, name="moved", max_attempts=12))["automation"]["id"]
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(flaky, 4), timeout_s=30)  # both retrying

    assert "errors" not in await stack.graphql(switch, {"i": {"id": off, "enabled": False}})
    corrected = {"kind": "webhook", "url": f"{base}/ok", "allow_private_network": True, "max_attempts": 12}
    changed = {"id": moved, "name": "moved", "trigger": trigger, "action": corrected}
    assert "errors" not in await stack.graphql(change, {"i": changed})

    [stopped] = (await _closed_firings(stack, off, 1))["firings"]["items"]
    assert stopped["status"] == "FAILED" and "switched off after the firing's first attempt" in stopped["detail"]
    [delivered] = (await _closed_firings(stack, moved, 1))["firings"]["items"]
    assert delivered["status"] == "DELIVERED" and len(ok.received) == 1
