"""One creator's webhooks whose names never resolve hold up no one else's: the lookups of a creator, and of an
automation, hold at most a few threads, counted until each thread ends, and each lookup is bounded."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from modelreg.errors import InvalidInput
from modelreg.services.automations import webhook_targets
from modelreg.services.automations.webhook_targets import LookupShares

PUBLIC = "93.184.216.34"


class NameServers:
    """The system's resolver as a webhook lookup sees it: blocks its thread, for ever for the names under
    `.slow.example` (their name server never answers), until the test ends."""

    def __init__(self) -> None:
        self.given_up = threading.Event()
        self.asked: list[str] = []  # every name a thread was started for

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host.endswith(".slow.example"):
            self.given_up.wait()
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        return [PUBLIC]


class Receiver:
    def __init__(self) -> None:
        self.delivered = asyncio.Event()
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.delivered.set()
        return httpx.Response(204)


@pytest.fixture
async def name_servers() -> AsyncIterator[NameServers]:
    servers = NameServers()
    yield servers
    servers.given_up.set()  # the blocked threads end


def deliver(
    shares: LookupShares, creator: str, automation: str, url: str, receiver: Receiver
) -> asyncio.Task[httpx.Response]:
    resolve = shares.for_webhooks_of(creator, automation)
    return asyncio.create_task(webhook_targets.post(receiver.client, url, b"{}", {}, resolve=resolve))


async def test_one_creators_names_that_never_resolve_do_not_hold_up_another_creators_delivery(
    name_servers: NameServers,
) -> None:
    shares = LookupShares(name_servers, per_creator=4, per_automation=2)
    nowhere = Receiver()
    # 4 automations of one member at names whose name server never answers, 5 firings each (20: all they may have
    # pending), cut short by their deadline and retried: the threads they started still wait.
    for _attempt in range(2):
        firings = [
            deliver(shares, "user:mallory", f"a{n}", f"http://slow{n}.slow.example:9000/", nowhere)
            for n in range(4)
            for _ in range(5)
        ]
        await asyncio.sleep(0)
        for firing in firings:
            firing.cancel()
        await asyncio.gather(*firings, return_exceptions=True)
    assert shares.held_by("user:mallory") == 4  # counted while their threads wait, not given back at the cancel
    waiting = [
        deliver(shares, "user:mallory", f"a{n}", f"http://slow{n}.slow.example:9000/", nowhere) for n in range(4)
    ]

    victims_receiver = Receiver()
    delivered = await deliver(shares, "user:victor", "b0", "http://hook.fast.example/", victims_receiver)

    assert delivered.status_code == 204
    assert not any(firing.done() for firing in waiting)  # mallory's still wait on their own lookups
    assert len([host for host in name_servers.asked if host.endswith(".slow.example")]) == 4  # threads, not 40
    name_servers.given_up.set()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert not nowhere.delivered.is_set()


async def test_one_automations_names_that_never_resolve_leave_its_creators_other_automations_lookups(
    name_servers: NameServers,
) -> None:
    shares = LookupShares(name_servers, per_creator=4, per_automation=2)
    stuck = [deliver(shares, "user:mallory", "a0", "http://slow0.slow.example/", Receiver()) for _ in range(5)]
    await asyncio.sleep(0)

    receiver = Receiver()
    await deliver(shares, "user:mallory", "a1", "http://hook.fast.example/", receiver)

    assert receiver.delivered.is_set() and not any(firing.done() for firing in stuck)
    assert name_servers.asked.count("slow0.slow.example") == 2
    for firing in stuck:
        firing.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)


async def test_a_delivery_whose_name_does_not_resolve_in_time_fails_that_attempt_saying_so(
    name_servers: NameServers,
) -> None:
    shares = LookupShares(name_servers)
    resolve = shares.for_webhooks_of("user:mallory", "a0")
    with pytest.raises(InvalidInput, match=r"the name slow0\.slow\.example did not resolve within 0\.05 s"):
        await webhook_targets.post(
            Receiver().client, "http://slow0.slow.example/", b"{}", {}, resolve=resolve, lookup_within_s=0.05
        )
    assert shares.held_by("user:mallory") == 1  # its thread still waits for the name server, and is counted
