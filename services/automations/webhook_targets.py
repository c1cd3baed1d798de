"""Where a webhook may point: public addresses only, unless an admin allowed private ones (SSRF).

A delivery resolves the host once, checks every address, and connects to the address it checked: resolving
again to connect would let a name that answers a public address to the check and 127.0.0.1 to the connection
(DNS rebinding) reach the server's own network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from modelreg.errors import InvalidInput

Resolve = Callable[[str], Awaitable[list[str]]]


# A name is looked up by the system's resolver, which blocks a thread until its name server answers or it gives up.
# A receiver whose name server never answers held a thread of the process's shared pool for every delivery to it:
# a few firings took all of them, and the API's document checks and file hashing (`modelreg server`) waited.
# Webhooks look names up on threads of their own.
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-lookup")


async def resolve_with_the_system(host: str) -> list[str]:
    lookup = functools.partial(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
    infos = await asyncio.get_running_loop().run_in_executor(_LOOKUPS, lookup)
    return [str(info[4][0]) for info in infos]


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


def _literal_address(host: str) -> str | None:
    """The address a url's host names outright, without its zone id: `[fe80::1%25eth0]` (RFC 6874) only says which
    interface reaches fe80::1. The resolver took `fe80::1%25eth0` for a name, found none, and the url was taken as
    one whose DNS record may come later."""
    address = host.partition("%")[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


async def _public_addresses(url: str, resolve: Resolve) -> list[str]:
    host = urlsplit(url).hostname
    if not host:
        raise InvalidInput(f"webhook url {url!r} has no host")
    try:
        addresses = [literal] if (literal := _literal_address(host)) else await resolve(host)
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


async def public_address(url: str, resolve: Resolve = resolve_with_the_system) -> str:
    """The address to deliver to: the first the host resolves to, once every one of them is public."""
    try:
        return (await _public_addresses(url, resolve))[0]
    except _Unresolved as exc:
        raise InvalidInput(f"{exc}: check the url, and that its DNS record exists") from None


async def refuse_private_target(url: str, resolve: Resolve = resolve_with_the_system) -> None:
    """Checked when the automation is created; each delivery checks again (DNS may have changed). A host that does
    not resolve yet is taken: its record may come with the receiver's own deploy, and its deliveries check it."""
    with contextlib.suppress(_Unresolved):
        await _public_addresses(url, resolve)


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
) -> httpx.Response:
    """POST `body` to `url`: to the public address its host resolves to, checked and connected to as one step,
    unless an admin allowed private addresses for this automation. The answer's status and headers are read,
    never its body (closed unread): a receiver answering with gigabytes filled the memory of the process that
    serves the API too (`modelreg server`), and did again at each retry of the firing after the restart."""
    try:
        async with asyncio.timeout(deadline_s):
            request = await _request(client, url, body, headers, private_allowed=private_allowed, resolve=resolve)
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
) -> httpx.Request:
    if private_allowed:
        return client.build_request("POST", url, content=body, headers=headers)
    address = await public_address(url, resolve)
    target = httpx.URL(url)
    return client.build_request(
        "POST",
        target.copy_with(host=address),
        content=body,
        # The Host header and, over TLS, the name sent and the certificate checked stay the url's host.
        headers={**headers, "Host": target.netloc.decode("ascii")},
        extensions={"sni_hostname": target.raw_host.decode("ascii")},
    )
