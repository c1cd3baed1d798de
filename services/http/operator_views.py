"""What the operator routes (/livez, /readyz, /healthz, /metrics) show to whom.

Anyone, without a key: that the process answers (/livez), whether it is ready (/readyz: its status and which part
does not answer) and /healthz's status (ok, degraded, down; whether PostgreSQL and the event log answer). That is
what a load balancer, a probe or an uptime monitor needs.

The figures and the error texts are the installation's own: queue names, job counts, the log's length and topic,
each projection's lag, a database's host and user in a connection error. They were shown to anyone who could
reach the port; now to the metrics token (`--metrics-token`, MODELREG_METRICS_TOKEN: what Prometheus sends as
its bearer credentials) and to an unlimited admin key. /healthz's list of parked streams, whose names can name
a private team's model, stays with an admin key (docs/access.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

METRICS_TOKEN: web.AppKey[str | None] = web.AppKey("metrics_token")
# Is the request's key an unlimited admin's? (services/http/api.py, which knows the keys)
ASKED_BY_AN_ADMIN: web.AppKey[Callable[[web.Request], Awaitable[bool]]] = web.AppKey("asked_by_an_admin")

SEEN_WITH = (
    "the metrics token (Authorization: Bearer <token>; the server's --metrics-token, MODELREG_METRICS_TOKEN) or an "
    "admin key"
)


async def sees_the_figures(request: web.Request) -> bool:
    """The request carries the metrics token, or an unlimited admin's key."""
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if not sent or scheme.lower() != "bearer":
        return False
    token = request.app.get(METRICS_TOKEN)
    if token and hmac.compare_digest(sent.strip().encode(), token.encode()):
        return True
    asked_by_an_admin = request.app.get(ASKED_BY_AN_ADMIN)
    return asked_by_an_admin is not None and await asked_by_an_admin(request)
