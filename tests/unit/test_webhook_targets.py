"""Where a webhook delivery connects: the public address its host resolved to when checked, never a second
answer from the name server (DNS rebinding), and never an address that only looks public."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from modelreg.errors import InvalidInput
from modelreg.services.automations import webhook_targets

PUBLIC = "93.184.216.34"


class NameServer:
    """An attacker's name server: answers one list of addresses, then another (TTL 0)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Receiver:
    """httpx's in-memory transport: what would have gone over the network, and a 204."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


async def test_a_delivery_connects_to_the_address_it_checked_even_if_the_name_moves_to_loopback() -> None:
    rebinding = NameServer([PUBLIC], ["127.0.0.1"])
    receiver = Receiver()

    response = await webhook_targets.post(
        receiver.client, "https://hooks.example:8443/ci?x=1", b"{}", {"X-Sig": "s"}, resolve=rebinding
    )

    [sent] = receiver.requests
    assert response.status_code == 204
    assert rebinding.asked == ["hooks.example"]  # one answer, checked and used
    assert (sent.url.host, sent.url.port, sent.url.path, sent.url.query) == (PUBLIC, 8443, "/ci", b"x=1")
    assert (sent.headers["Host"], sent.extensions["sni_hostname"]) == ("hooks.example:8443", "hooks.example")
    assert (sent.headers["X-Sig"], sent.content) == ("s", b"{}")


async def test_a_name_with_a_private_address_among_its_answers_is_refused_before_anything_is_sent() -> None:
    receiver = Receiver()
    with pytest.raises(InvalidInput, match="points at 127.0.0.1, a loopback, private or otherwise non-public"):
        await webhook_targets.post(
            receiver.client, "http://hooks.example/", b"{}", {}, resolve=NameServer([PUBLIC, "127.0.0.1"])
        )
    assert receiver.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",  # the cloud metadata service, IPv4-mapped
        "2002:a9fe:a9fe::1",  # 6to4 carrying 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 to 169.254.169.254
        "64:ff9b::10.0.0.1",  # NAT64 to a private address
        "64:ff9b:1::a9fe:a9fe",  # the local-use NAT64 prefix: a network's own
        "::127.0.0.1",  # IPv4-compatible loopback
        "100.64.0.1",  # carrier-grade NAT: not private to `is_private`, not public either
        "0.0.0.0",
        "::",
        "fe80::1%eth0",  # link-local with a zone
        "224.0.0.1",
    ],
)
async def test_addresses_that_reach_the_servers_own_network_are_refused(address: str) -> None:
    with pytest.raises(InvalidInput, match="non-public address"):
        await webhook_targets.public_address("http://hooks.example/", NameServer([address]))


@pytest.mark.parametrize(
    "url",
    [
        "http://[fe80::1%25eth0]/hook",  # link-local with a zone id, as a url writes it (RFC 6874)
        "http://[fe80::1%eth0]/hook",
        "http://[::ffff:127.0.0.1%25lo]/hook",
        "http://127.0.0.1%25lo/hook",
    ],
)
async def test_an_address_with_a_zone_id_is_judged_as_the_address_not_looked_up_as_a_name(url: str) -> None:
    # The system's resolver finds no name `fe80::1%25eth0`, and a host that does not resolve yet is taken at creation.
    async def the_systems_answer(host: str) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(InvalidInput, match="a loopback, private or otherwise non-public address"):
        await webhook_targets.refuse_private_target(url, the_systems_answer)


async def test_an_international_name_is_sent_as_its_ascii_form() -> None:
    receiver = Receiver()
    await webhook_targets.post(receiver.client, "https://bücher.example/", b"", {}, resolve=NameServer([PUBLIC]))
    [sent] = receiver.requests
    assert (sent.headers["Host"], sent.extensions["sni_hostname"]) == ("xn--bcher-kva.example", "xn--bcher-kva.example")


async def test_an_admin_allowed_private_target_is_posted_to_as_named() -> None:
    receiver = Receiver()
    never = NameServer(["127.0.0.1"])
    await webhook_targets.post(receiver.client, "http://ci.internal:9/x", b"", {}, private_allowed=True, resolve=never)
    [sent] = receiver.requests
    assert (sent.url.host, never.asked) == ("ci.internal", [])


async def test_a_host_that_does_not_resolve_yet_is_taken_at_creation_and_checked_at_each_delivery() -> None:
    # Its DNS record may come with the receiver's own deploy, after the automation is set up.
    async def nowhere(host: str) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    await webhook_targets.refuse_private_target("https://hooks.example.invalid/x", nowhere)
    with pytest.raises(InvalidInput, match="does not resolve .*: check the url, and that its DNS record exists"):
        await webhook_targets.post(Receiver().client, "https://hooks.example.invalid/x", b"{}", {}, resolve=nowhere)
    with pytest.raises(InvalidInput, match="a loopback, private or otherwise non-public address"):
        await webhook_targets.refuse_private_target("http://10.0.0.8/x", NameServer(["10.0.0.8"]))


async def test_a_receiver_answering_with_an_endless_body_is_read_no_further_than_its_status() -> None:
    # A member's webhook pointing at a receiver that streams gigabytes filled the memory of the process that also
    # serves the API (`modelreg server`), and the firing, still pending after the restart, did it again.
    sent_chunks = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        for _ in range(64):  # 64 MiB stands for "for ever"
            sent_chunks += 1
            yield b"x" * 1024**2

    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=endless())))
    async with asyncio.timeout(10):
        response = await webhook_targets.post(client, "http://hooks.example/", b"{}", {}, resolve=NameServer([PUBLIC]))
    assert response.status_code == 200
    assert sent_chunks <= 1


async def test_a_receiver_that_sends_its_answer_a_byte_at_a_time_is_given_up_at_the_deadline() -> None:
    # The client's timeouts bound each wait for a byte, not the whole answer: a byte every 0.1 s held the delivery
    # (and its firing's place in the runner's window) for ever.
    async def dripping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.1)

    server = await asyncio.start_server(dripping, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=10.0) as client, asyncio.timeout(10):
            with pytest.raises(httpx.TimeoutException, match="did not answer within 1 s"):
                await webhook_targets.post(
                    client, f"http://127.0.0.1:{port}/", b"{}", {}, private_allowed=True, deadline_s=1.0
                )
    finally:
        server.close()
    assert time.monotonic() - started < 5


async def test_a_receiver_whose_name_server_never_answers_leaves_the_process_its_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The system's resolver blocks a thread per lookup until it gives up. Deliveries to such a host took every
    # thread of the process's shared pool, where the API checks new GraphQL documents and hashes uploaded files.
    answered = threading.Event()

    def name_server_that_never_answers(*args: object, **kwargs: object) -> list[tuple[object, ...]]:
        answered.wait(10)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", name_server_that_never_answers)
    lookups = [asyncio.create_task(webhook_targets.resolve_with_the_system(f"h{i}.example")) for i in range(40)]
    await asyncio.sleep(0.1)  # every lookup is under way
    try:
        async with asyncio.timeout(2):
            assert await asyncio.to_thread(lambda: "the API's own work") == "the API's own work"
    finally:
        answered.set()
        await asyncio.gather(*lookups, return_exceptions=True)


async def test_a_host_with_a_part_over_63_characters_is_refused_as_no_host_name() -> None:
    # The resolver's IDNA encoding raised UnicodeError: creating the automation answered an internal error.
    with pytest.raises(InvalidInput, match="is not a host name: each part between dots has 1 to 63 characters"):
        await webhook_targets.refuse_private_target(f"https://{'a' * 64}.example/hook")
