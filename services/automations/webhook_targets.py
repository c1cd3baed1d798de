"""Where a webhook may point: public addresses only, unless an admin allowed private ones (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from modelreg.errors import InvalidInput


async def refuse_private_target(url: str) -> None:
    """Checked when the automation is created and again before each delivery (DNS may have changed)."""
    host = urlsplit(url).hostname
    if not host:
        raise InvalidInput(f"webhook url {url!r} has no host")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInput(f"webhook host {host!r} does not resolve ({exc}): check the url") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
        ):
            raise InvalidInput(
                f"webhook url {url!r} points at {address}, a loopback or private address: "
                "only an admin may allow that (allowPrivateNetwork: true)"
            )
