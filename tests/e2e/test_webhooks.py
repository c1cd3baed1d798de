"""Webhooks: signed payloads to a real local receiver, retries when it fails, and a delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from support.stack import Stack
from support.story import LINK, LOG_VERSION, version_input
from support.waiting import wait_until

CREATE = """mutation($n: String!, $t: GenericScalar!, $a: GenericScalar!) {
  createAutomation(name: $n, trigger: $t, action: $a) { automation { id } webhookSecret }
}"""
DELIVERIES = """query($id: ID!) { automation(id: $id) {
  firings { status detail } deliveries { attempt statusCode error } } }"""


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


async def _linked_with_alias(stack: Stack, alias: str) -> str:
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"weights")})
    version_id = logged["data"]["logArtifactVersion"]["id"]
    await stack.graphql(LINK, {"model": "nature-classification", "id": version_id, "aliases": [alias]}, actor="user:carol")
    return version_id


async def test_a_webhook_gets_a_signed_payload_filled_from_the_event(stack: Stack, receiver_url: tuple[Receiver, Receiver, str]) -> None:
    ok, _, base = receiver_url
    action = {
        "kind": "webhook", "url": f"{base}/ok", "allow_private_network": True,
        "payload": {"event": "${event_type}", "by": "${actor}", "model": "${registered_model}", "alias": "${alias}", "version": "${artifact_ref}"},
    }
    created = (await stack.graphql(CREATE, {"n": "tell ci", "t": {"event": "alias_added", "alias_pattern": "prod.*"}, "a": action}))["data"]
    secret = created["createAutomation"]["webhookSecret"]

    await _linked_with_alias(stack, "staging")  # does not match the pattern
    await _linked_with_alias(stack, "production")
    await wait_until(lambda: _count(ok, 1))

    ((headers, body),) = ok.received
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Modelreg-Signature"] == expected
    assert json.loads(body) == {
        "event": "registry.alias_added", "by": "user:carol", "model": "nature-classification", "alias": "production",
        "version": "acme/nature/classifier:v0",
    }


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


async def test_a_failing_receiver_gets_retries_and_every_attempt_is_in_the_delivery_log(
    stack: Stack, receiver_url: tuple[Receiver, Receiver, str]
) -> None:
    _, flaky, base = receiver_url
    action = {"kind": "webhook", "url": f"{base}/flaky", "allow_private_network": True, "payload": {"alias": "${alias}"}}
    created = (await stack.graphql(CREATE, {"n": "flaky", "t": {"event": "alias_added"}, "a": action}))["data"]
    automation_id = created["createAutomation"]["automation"]["id"]

    await _linked_with_alias(stack, "production")

    async def delivered() -> bool:
        firings = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["firings"]
        return bool(firings) and firings[0]["status"] == "delivered"

    await wait_until(delivered, timeout_s=30)
    log = (await stack.graphql(DELIVERIES, {"id": automation_id}))["data"]["automation"]["deliveries"]
    assert [(d["attempt"], d["statusCode"]) for d in reversed(log)] == [(1, 500), (2, 500), (3, 204)]
    assert len({h["X-Modelreg-Delivery"] for h, _ in flaky.received}) == 1  # one delivery id: receivers can dedupe


async def test_a_webhook_to_a_private_address_needs_an_admin(stack: Stack) -> None:
    member = await stack.key("user:mia", role="member")
    loopback = {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    refused = await stack.graphql(CREATE, {"n": "ssrf", "t": {"event": "alias_added"}, "a": loopback}, key=member)
    allowed_by_member = await stack.graphql(CREATE, {"n": "ssrf", "t": {"event": "alias_added"}, "a": {**loopback, "allow_private_network": True}}, key=member)

    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT" and "private" in refused["errors"][0]["message"]
    assert allowed_by_member["errors"][0]["extensions"]["code"] == "FORBIDDEN"
