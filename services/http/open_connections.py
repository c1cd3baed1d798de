"""How many connections one API process keeps open is bounded: past the bound, a new one is answered 503 and closed.

aiohttp accepts every connection. Twenty thousand held open (each closed by the server after 75 s idle, and opened
again) took every file descriptor the process could have: it could open no file (an artifact upload), no new
database connection, not even PostgreSQL's pid file (services/infra/embedded_postgres.py), until they went. A
connection over the bound is answered at once and closed, before anything it sends is read (a client midway
through sending a body may see the connection reset instead of the answer: it retries either): its descriptor
comes back at once, and the process keeps the rest for its files, its database and its event log.

The probes are refused like any other request while the bound is full: a flood that holds every connection takes
the replica out of service, and restarts it if it lasts (which drops the flood's connections). Not aiohttp's own
TCPSite: it hands every accepted connection to the app, and has no bound to set.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Half the descriptors the process may open, at most this many: the other half stays for files, the database pool
# and the event log, whatever a flood of connections does.
MOST_CONNECTIONS = 10_000
BACKLOG = 128  # aiohttp's TCPSite's


def descriptors_raised_to_the_hard_limit() -> int:
    """The soft limit on open files raised to the hard one, as Go's runtime does (1,024 soft is common, and would
    leave 512 connections); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a hard limit above the kernel's nr_open, or not allowed
            log.warning("could not raise the open files limit from %s to %s (%s)", soft, hard, exc)
    return soft


def default_max_connections(descriptors: int) -> int:
    if descriptors == resource.RLIM_INFINITY:
        return MOST_CONNECTIONS
    return max(min(MOST_CONNECTIONS, descriptors // 2), 1)


class OpenConnections(Collector):
    """The connections of one API process against its bound; /metrics shows them and how many were refused."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server, self.limit, self.refused = server, limit, 0
        # Connections handed to aiohttp that it has not registered yet: the loop accepts a burst of connections
        # before any of them is made, and without these the whole burst was taken past the bound.
        self.being_made = 0

    def open(self) -> int:
        return len(self.server.connections) + self.being_made

    def collect(self) -> Any:
        opened = GaugeMetricFamily("modelreg_http_connections_open", "Connections this API process keeps open")
        opened.add_metric([], len(self.server.connections))
        yield opened
        refused = CounterMetricFamily(
            "modelreg_http_connections_refused", "Connections answered 503 and closed: the bound was reached"
        )
        refused.add_metric([], self.refused)
        yield refused

    def busy_answer(self) -> bytes:
        text = (
            f"this server has as many connections open as it may ({self.limit:,}): nothing was read or done; retry "
            "in 1 s (the operator sets the bound: modelreg server/api --max-connections, MODELREG_MAX_CONNECTIONS)"
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


async def listen_bounded(runner: web.AppRunner, host: str, port: int, connections: OpenConnections) -> asyncio.Server:
    """Serves `runner`'s app on host:port within `connections`' bound. Close the returned server before
    `runner.cleanup()`."""
    server, loop = runner.server, asyncio.get_running_loop()
    assert server is not None, "runner.setup() first"
    refused = _Refused(connections.busy_answer())

    def made() -> None:
        connections.being_made = 0  # after this turn of the loop, aiohttp has registered the burst's connections

    def connection() -> asyncio.Protocol:
        if connections.open() >= connections.limit:
            connections.refused += 1
            return refused
        if connections.being_made == 0:
            loop.call_soon(made)
        connections.being_made += 1
        return server()

    return await loop.create_server(connection, host, port, backlog=BACKLOG)
