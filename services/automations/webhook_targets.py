"""Where a webhook may point: public addresses only, unless an admin allowed private ones (SSRF).

A delivery resolves the host once, checks every address, and connects to the address it checked: resolving
again to connect would let a name that answers a public address to the check and 127.0.0.1 to the connection
(DNS rebinding) reach the server's own network.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from modelreg.errors import InvalidInput

Resolve = Callable[[str], Awaitable[list[str]]]


# A lookup that blocks its thread until the name server answers or the resolver gives up (the system's resolver
# does: 5 s a try, 2 tries a name server, by default).
LookUp = Callable[[str], list[str]]


def look_up_with_the_system(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


# How long a delivery waits for its host's addresses. A name server that never answers held the delivery until its
# 30 s deadline at each attempt, and the reason recorded was the receiver's ("did not answer").
LOOKUP_WITHIN_S = 10.0


def _on_a_thread_of_its_own(
    look_up: LookUp, host: str, ended: Callable[[], None] | None = None
) -> Awaitable[list[str]]:
    """`look_up(host)` on a thread started for it, as a future of this loop; `ended` is called on the loop once the
    thread is done, whether or not anyone still waits for its answer. Not a pool's thread: a pool of 8 shared by all
    webhooks let one member's firings at names whose name server never answers take every thread, and every other
    team's deliveries waited in its queue (10 to 20 s each, for as long as their retries lasted)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[str]] = loop.create_future()

    def settle(addresses: list[str] | None, error: BaseException | None) -> None:
        if not answer.done():  # not given up on (the delivery's deadline, the runner stopping)
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(addresses or [])
        if ended is not None:
            ended()

    def run() -> None:
        addresses, error = None, None
        try:
            addresses = look_up(host)
        except Exception as exc:  # noqa: BLE001 -- handed to whoever waits on the loop
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one waits any more
            loop.call_soon_threadsafe(settle, addresses, error)

    threading.Thread(target=run, name=f"webhook-lookup {host}", daemon=True).start()
    return answer


async def resolve_with_the_system(host: str) -> list[str]:
    """The system's answer, looked up on a thread of its own (the API's shared pool, where it checks documents and
    hashes files, is left alone)."""
    return await _on_a_thread_of_its_own(look_up_with_the_system, host)


class LookupShares:
    """Webhook lookups, shared out between creators: one creator's firings hold at most `per_creator` lookups at once,
    one automation's at most `per_automation`, each counted until its thread ends, not until the delivery that asked
    gives up on it. A creator whose names never resolve only waits behind their own lookups; other creators' start at
    once, on threads of their own (at most `per_creator` threads a creator, each ending when the resolver gives up).
    The per-creator cap on pending firings promised that one member could not hold up other teams' automations; their
    lookups did, on the pool all webhooks shared."""

    def __init__(self, look_up: LookUp = look_up_with_the_system, *, per_creator: int = 4, per_automation: int = 2):
        self.look_up = look_up
        self.per_creator = per_creator
        self.per_automation = per_automation
        self._held: collections.Counter[str] = collections.Counter()
        self._freed: list[asyncio.Future[None]] = []  # lookups waiting for a share of their creator or automation

    def held_by(self, creator: str) -> int:
        """How many lookups of `creator`'s webhooks are under way (threads not yet ended)."""
        return self._held[f"creator {creator}"]

    def for_webhooks_of(self, creator: str, automation_id: object) -> Resolve:
        """The resolver of one automation's deliveries."""
        return functools.partial(self._resolve, creator=creator, automation=str(automation_id))

    async def _resolve(self, host: str, *, creator: str, automation: str) -> list[str]:
        shares = {f"creator {creator}": self.per_creator, f"automation {automation}": self.per_automation}
        while any(self._held[holder] >= most for holder, most in shares.items()):
            freed = asyncio.get_running_loop().create_future()
            self._freed.append(freed)
            try:
                await freed
            finally:
                with contextlib.suppress(ValueError):
                    self._freed.remove(freed)
        self._held.update(shares.keys())
        try:
            looking_up = _on_a_thread_of_its_own(self.look_up, host, ended=functools.partial(self._given_back, shares))
        except BaseException:  # no thread could start (the process's limit): the shares were never used
            self._given_back(shares)
            raise
        return await looking_up

    def _given_back(self, shares: dict[str, int]) -> None:
        self._held.subtract(shares.keys())
        self._held = +self._held  # drops the holders with none left
        freed, self._freed = self._freed, []
        for waiting in freed:
            if not waiting.done():
                waiting.set_result(None)


# NAT64's well-known prefix translates to the IPv4 address in its last 32 bits (RFC 6052); the local-use prefix
# (RFC 8215) is a network's own, wherever it leads. The IPv4-compatible form (::a.b.c.d, deprecated) carries one
# too. `is_global` counts all three public.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        # An IPv6 form of an IPv4 address reaches that IPv4 address: judge the one it carries.
        carried = _carried_ipv4(address)
        if carried is not None:
            return _is_public(carried)
    # `is_global` leaves out what `is_private` misses too (100.64.0.0/10, the carrier-grade NAT range, for one).
    return address.is_global and not address.is_multicast


class _Unresolved(Exception):
    """The host does not resolve, or to no address: yet, maybe (a record the same deploy creates)."""


class _NotResolvedInTime(_Unresolved):
    """Its name server did not answer within the lookup's bound: tried again at the next attempt."""


def _literal_address(host: str) -> str | None:
    """The address a url's host names outright, without its zone id: `[fe80::1%25eth0]` (RFC 6874) only says which
    interface reaches fe80::1. The resolver took `fe80::1%25eth0` for a name, found none, and the url was taken as
    one whose DNS record may come later."""
    address = host.partition("%")[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


async def _public_addresses(url: str, resolve: Resolve, within_s: float) -> list[str]:
    host = urlsplit(url).hostname
    if not host:
        raise InvalidInput(f"webhook url {url!r} has no host")
    try:
        if (literal := _literal_address(host)) is not None:
            addresses = [literal]
        else:
            async with asyncio.timeout(within_s):
                addresses = await resolve(host)
    except TimeoutError:
        raise _NotResolvedInTime(
            f"the name {host} did not resolve within {within_s:g} s: its name server did not answer (or the lookups "
            "of its creator's other webhooks held all they may at once, waiting for theirs)"
        ) from None
    except socket.gaierror as exc:
        raise _Unresolved(f"webhook host {host!r} does not resolve ({exc})") from None
    except UnicodeError:  # a part between dots over 63 characters, or empty: no name server is asked
        raise InvalidInput(
            f"webhook host {host!r} is not a host name: each part between dots has 1 to 63 characters"
        ) from None
    if not addresses:
        raise _Unresolved(f"webhook host {host!r} resolves to no address")
    for text in addresses:
        if not _is_public(ipaddress.ip_address(text.split("%", 1)[0])):
            raise InvalidInput(
                f"webhook url {url!r} points at {text}, a loopback, private or otherwise non-public address: "
                "only an admin may allow that (the action's allow_private_network: true)"
            )
    return addresses


async def public_address(
    url: str, resolve: Resolve = resolve_with_the_system, *, lookup_within_s: float = LOOKUP_WITHIN_S
) -> str:
    """The address to deliver to: the first the host resolves to, once every one of them is public."""
    try:
        return (await _public_addresses(url, resolve, lookup_within_s))[0]
    except _NotResolvedInTime as exc:
        raise InvalidInput(str(exc)) from None
    except _Unresolved as exc:
        raise InvalidInput(f"{exc}: check the url, and that its DNS record exists") from None


async def refuse_private_target(url: str, resolve: Resolve = resolve_with_the_system) -> None:
    """Checked when the automation is created; each delivery checks again (DNS may have changed). A host that does
    not resolve yet (or not in time) is taken: its record may come with the receiver's own deploy, and its deliveries
    check it."""
    with contextlib.suppress(_Unresolved):
        await _public_addresses(url, resolve, LOOKUP_WITHIN_S)


# How long one delivery attempt may take, from looking its host up to the answer's status line and headers. The
# client's own timeouts bound each wait for a byte, not the whole: a receiver sending a byte every few seconds held
# its firing (and its place in the runner's window) for ever.
DELIVERY_DEADLINE_S = 30.0


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    private_allowed: bool = False,
    resolve: Resolve = resolve_with_the_system,
    deadline_s: float = DELIVERY_DEADLINE_S,
    lookup_within_s: float = LOOKUP_WITHIN_S,
) -> httpx.Response:
    """POST `body` to `url`: to the public address its host resolves to, checked and connected to as one step,
    unless an admin allowed private addresses for this automation. The answer's status and headers are read,
    never its body (closed unread): a receiver answering with gigabytes filled the memory of the process that
    serves the API too (`modelreg server`), and did again at each retry of the firing after the restart."""
    try:
        async with asyncio.timeout(deadline_s):
            request = await _request(
                client, url, body, headers, private_allowed=private_allowed, resolve=resolve, within_s=lookup_within_s
            )
            response = await client.send(request, stream=True)
            await response.aclose()
    except TimeoutError:
        raise httpx.ReadTimeout(f"the receiver did not answer within {deadline_s:g} s") from None
    return response


async def _request(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    private_allowed: bool,
    resolve: Resolve,
    within_s: float,
) -> httpx.Request:
    if private_allowed:
        return client.build_request("POST", url, content=body, headers=headers)
    address = await public_address(url, resolve, lookup_within_s=within_s)
    target = httpx.URL(url)
    return client.build_request(
        "POST",
        target.copy_with(host=address),
        content=body,
        # The Host header and, over TLS, the name sent and the certificate checked stay the url's host.
        headers={**headers, "Host": target.netloc.decode("ascii")},
        extensions={"sni_hostname": target.raw_host.decode("ascii")},
    )
