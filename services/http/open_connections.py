"""How many connections one API process keeps open is bounded: past the bound, a new one is answered 503 and closed.

aiohttp accepts every connection. Twenty thousand held open (each closed by the server after 75 s idle, and opened
again) took every file descriptor the process could have: it could open no file (an artifact upload), no new
database connection, not even PostgreSQL's pid file (services/infra/embedded_postgres.py), until they went. A
connection over the bound is answered at once, before anything it sends is read, and closed: its descriptor comes
back at once, and the process keeps the rest for its files, its database and its event log.

Not aiohttp's own TCPSite: it hands every accepted connection to the app, and has no bound to set.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from aiohttp import web

# Half the descriptors the process may open, at most this many: the other half stays for files, the database pool
# and the event log, whatever a flood of connections does.
MOST_CONNECTIONS = 10_000
BACKLOG = 128  # aiohttp's TCPSite's


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(min(MOST_CONNECTIONS, soft // 2), 1) if soft != resource.RLIM_INFINITY else MOST_CONNECTIONS


def busy_answer(limit: int) -> bytes:
    text = (
        f"this server has as many connections open as it may ({limit:,}): nothing was read or done; retry in 1 s "
        "(the operator sets the bound: modelreg server/api --max-connections, MODELREG_MAX_CONNECTIONS)"
    ).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
    )


class _Refused(asyncio.Protocol):
    """A connection over the bound: answered and closed as soon as it is made."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: Any) -> None:  # uvloop's transports are no asyncio.WriteTransport
        transport.write(self.answer)
        transport.close()


async def listen_bounded(runner: web.AppRunner, host: str, port: int, max_connections: int) -> asyncio.Server:
    """Serves `runner`'s app on host:port, at most `max_connections` connections at once. Close the returned server
    before `runner.cleanup()`."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    refused = _Refused(busy_answer(max_connections))

    def connection() -> asyncio.Protocol:
        return server() if len(server.connections) < max_connections else refused

    return await asyncio.get_running_loop().create_server(connection, host, port, backlog=BACKLOG)
