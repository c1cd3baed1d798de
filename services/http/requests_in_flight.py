"""How many requests one API process serves at once is bounded: past the bound, 503 with Retry-After.

aiohttp accepts every connection and runs a handler for every request it parses; nothing bounded how many.
Callers holding requests open (a body sent slowly, until its deadline; many uploads at once) took memory,
file descriptors and database waits from everyone until the process could serve no one. A request over the
bound is refused before its body is read, saying to retry; the client's transport does (a 503 is retriable).

Not counted: the operator's probes (a replica busy with slow uploads is busy, not dead, and must not be
restarted or taken out of service for it) and websockets (a subscription lasts as long as its subscriber;
live events bound their own sockets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from graphql_server.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from modelreg.services.http.body_limits import refusal

PROBES = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
RETRY_AFTER_S = "1"


@dataclass
class RequestsInFlight:
    limit: int
    serving: int = 0

    def busy_message(self) -> str:
        return (
            f"this server is serving as many requests as it may at once ({self.limit}): nothing was done; retry in "
            f"{RETRY_AFTER_S} s (the operator sets the bound: modelreg server/api --max-requests-in-flight, "
            "MODELREG_MAX_REQUESTS_IN_FLIGHT)"
        )


IN_FLIGHT: web.AppKey[RequestsInFlight] = web.AppKey("requests_in_flight", RequestsInFlight)


@web.middleware
async def requests_within_capacity(request: web.Request, handler: Any) -> web.StreamResponse:
    in_flight = request.app[IN_FLIGHT]
    if request.path in PROBES or _opens_a_websocket(request):
        return await handler(request)
    if in_flight.serving >= in_flight.limit:
        busy = in_flight.busy_message()
        return refusal(request, 503, busy, code="UNAVAILABLE", retriable=True, headers={"Retry-After": RETRY_AFTER_S})
    in_flight.serving += 1
    try:
        return await handler(request)
    finally:
        in_flight.serving -= 1


def _opens_a_websocket(request: web.Request) -> bool:
    """A handshake the websocket route will take (an Upgrade header alone is not: sent with any POST, it would
    slip every request past the bound)."""
    # With the protocol the route speaks: without it, aiohttp warned of protocols that "don't overlap" at each socket.
    probe = web.WebSocketResponse(protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,))
    return hdrs.UPGRADE in request.headers and probe.can_prepare(request).ok
