"""A caller cannot hold the API: a body sent too slowly is refused with 408, past a bound of requests in flight the
next is refused with 503 and Retry-After (the probes still answer), and past a bound of open connections a new one
is answered 503 and closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry, generate_latest
from support.event_loops import Run
from support.waiting import until

from modelreg.services.http.body_limits import (
    LIMITS,
    BodyLimits,
    bodies_within_limits,
    read_bounded,
    received_bounded,
)
from modelreg.services.http.open_connections import OpenConnections, listen_bounded
from modelreg.services.http.requests_in_flight import (
    IN_FLIGHT,
    RequestsInFlight,
    _opens_a_websocket,
    requests_within_capacity,
)

DEADLINE_S = 0.5


def _app(*, in_flight: int = 100, release: asyncio.Event | None = None) -> web.Application:
    """The API's bounds around routes that read bodies as the API's do (a JSON body, an artifact file's pieces)."""
    app = web.Application(
        middlewares=[requests_within_capacity, bodies_within_limits], handler_args={"lingering_time": 0}
    )
    app[LIMITS] = BodyLimits(max_body_bytes=1024**2, max_blob_bytes=1024**3, read_timeout_s=DEADLINE_S)
    app[IN_FLIGHT] = RequestsInFlight(in_flight)

    async def graphql(request: web.Request) -> web.Response:
        body = await read_bounded(request)
        if release is not None:
            await release.wait()
        return web.json_response({"data": {"bytes": len(body)}})

    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"bytes": sum([len(piece) async for piece in received_bounded(request)])})

    async def livez(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app.router.add_post("/graphql", graphql)
    app.router.add_put("/blobs/{digest}", upload)
    app.router.add_get("/livez", livez)
    return app


async def _dripped(port: int, method: str, path: str, body: bytes, every_s: float) -> tuple[str, str]:
    """The status line and body of the answer to a request whose body is sent a byte every `every_s`, once the
    server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    writer.write(head.encode() + b"\r\n\r\n")

    async def drip() -> None:
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)

    dripping = asyncio.create_task(drip())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=DEADLINE_S * 10)
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        text = await reader.readexactly(length)
        # Then the server closes the connection (a reset, as the body's rest is unread): nothing more is served on it.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), timeout=DEADLINE_S * 2) == b""
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
    return head.split(b"\r\n")[0].decode(), text.decode()


async def test_a_graphql_body_dripped_byte_by_byte_is_refused_with_408_at_its_deadline() -> None:
    async with TestClient(TestServer(_app())) as client:
        body = json.dumps({"query": "{ viewer { id } }"}).encode()
        started = asyncio.get_running_loop().time()
        status, text = await _dripped(client.port, "POST", "/graphql", body, every_s=0.1)
        took = asyncio.get_running_loop().time() - started

    assert status == "HTTP/1.1 408 Request Timeout"
    assert took < DEADLINE_S * 4  # answered at the deadline, and the connection closed with the answer
    error = json.loads(text)["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "must arrive within 0.5 s, plus 1 s for every 64 KiB" in error["message"]
    assert "--body-read-timeout" in error["message"]


async def test_a_large_body_over_a_slow_but_steady_link_is_taken_past_the_deadline() -> None:
    # 1,000 KiB at about 1 MiB/s: twice the deadline in all, and far over the slowest rate taken.
    async with TestClient(TestServer(_app())) as client:
        response = await client.post("/graphql", data=_pieces(10, every_s=0.1, size=100 * 1024))
        assert response.status == 200
        assert await response.json() == {"data": {"bytes": 10 * 100 * 1024}}


async def _pieces(count: int, every_s: float, size: int = 1000) -> AsyncIterator[bytes]:
    for _ in range(count):
        await asyncio.sleep(every_s)
        yield b"x" * size


async def test_an_artifact_file_that_keeps_arriving_is_taken_however_long_it_takes() -> None:
    async with TestClient(TestServer(_app())) as client:
        # 8 pieces, 0.2 s apart: 1.6 s in all, over three times the deadline, but never silent for that long.
        response = await client.put("/blobs/sha256:abc", data=_pieces(8, every_s=DEADLINE_S * 0.4))
        assert response.status == 200
        assert await response.json() == {"bytes": 8000}


async def test_an_artifact_file_that_stops_arriving_is_refused_with_408() -> None:
    async with TestClient(TestServer(_app())) as client:
        status, text = await _dripped(client.port, "PUT", "/blobs/sha256:abc", b"xxxx", every_s=DEADLINE_S * 2)

    assert status == "HTTP/1.1 408 Request Timeout"
    assert "each piece of an uploaded file must arrive within 0.5 s" in text


async def test_past_the_bound_of_requests_in_flight_the_next_is_refused_with_503_and_retry_after() -> None:
    release = asyncio.Event()
    async with TestClient(TestServer(_app(in_flight=2, release=release))) as client:
        held = [asyncio.create_task(client.post("/graphql", data=b"{}")) for _ in range(2)]
        while client.server.app[IN_FLIGHT].serving < 2:
            await asyncio.sleep(0.01)

        refused = await client.post("/graphql", data=b"{}")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        error = (await refused.json())["errors"][0]
        assert error["extensions"] == {"code": "UNAVAILABLE", "retriable": True}
        assert "--max-requests-in-flight" in error["message"]
        assert (await client.get("/livez")).status == 200  # the probes answer a busy replica
        # Only a websocket's handshake is left uncounted, not any request naming an Upgrade.
        smuggled = await client.post("/graphql", data=b"{}", headers={"Upgrade": "websocket", "Connection": "upgrade"})
        assert smuggled.status == 503

        release.set()
        assert {(await answer).status for answer in held} == {200}
        assert (await client.post("/graphql", data=b"{}")).status == 200  # room again
        assert client.server.app[IN_FLIGHT].serving == 0


@contextlib.asynccontextmanager
async def _listening(bound: int) -> AsyncIterator[tuple[int, OpenConnections]]:
    runner = web.AppRunner(_app())
    await runner.setup()
    assert runner.server is not None
    connections = OpenConnections(runner.server, bound)
    listening = await listen_bounded(runner, "127.0.0.1", 0, connections)
    try:
        yield listening.sockets[0].getsockname()[1], connections
    finally:
        listening.close()
        await runner.cleanup()


def _registered(collector: OpenConnections) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_past_the_bound_of_open_connections_a_new_one_is_answered_503_and_closed(run: Run) -> None:
    # Twenty thousand idle connections took every file descriptor the process could open: no file, no database
    # connection, not PostgreSQL's pid file, until they went.
    async def story() -> None:
        async with _listening(bound=2) as (port, connections):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]  # open, and send nothing
            await until(lambda: len(connections.server.connections) == 2)

            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), 10)  # answered before it sent anything, then closed
            writer.close()
            head, _, text = refused.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head
            assert b"(2)" in text and b"--max-connections" in text
            assert connections.refused == 1
            figures = generate_latest(_registered(connections)).decode()
            assert "modelreg_http_connections_refused_total 1.0" in figures
            assert "modelreg_http_connections_open 2.0" in figures

            for _, writer in held:
                writer.close()
            await until(lambda: len(connections.server.connections) == 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200 ")  # room again
            writer.close()

    run(story())


def test_a_burst_of_connections_is_held_to_the_bound(run: Run) -> None:
    # The loop accepts a burst before any of its connections is made: counted only once made, the whole burst of 20
    # was kept against a bound of 5.
    async def story() -> None:
        async with _listening(bound=5) as (port, connections):
            burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # all queued before a turn
            try:
                await until(lambda: connections.refused + len(connections.server.connections) == 20)
                assert (len(connections.server.connections), connections.refused) == (5, 15)
            finally:
                for caller in burst:
                    caller.close()

    run(story())


def test_a_websocket_handshake_is_told_apart_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Each subscription's handshake logged "Client protocols ['graphql-transport-ws'] don't overlap server-known
    ones ()": the probe telling it apart from a request merely naming an Upgrade asked without the protocol."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "graphql-transport-ws",
    }
    with caplog.at_level(logging.WARNING):
        assert _opens_a_websocket(make_mocked_request("GET", "/graphql", headers=headers))
    assert caplog.records == []
