"""A caller cannot make the API hold an answer for it: an answer it does not take in time is dropped with its
connection, and past a bound of bytes waiting to be taken a big read is refused with 503 and Retry-After.

Served as `modelreg server` serves (aiohttp's AppRunner, our listener), on both event loops it may run on: aiohttp's
test server cancels a handler whose caller went away, which hid an error logged on every cut. The callers are raw
sockets whose reading the tests control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from support.event_loops import Run
from support.waiting import until

from modelreg.services.http.body_limits import LIMITS, BodyLimits
from modelreg.services.http.metrics import GRAPHQL_OPERATION
from modelreg.services.http.open_connections import OpenConnections, listen_bounded
from modelreg.services.http.requests_in_flight import IN_FLIGHT, RequestsInFlight, requests_within_capacity
from modelreg.services.http.unread_answers import UNREAD_ANSWERS, UnreadAnswers, answers_taken_in_time

TIMEOUT_S = 0.3
ANSWER = b"x" * (16 * 1024**2)  # more than the sockets of both ends hold, so that a caller that reads nothing holds it
NEVER_CUT = 1  # byte a second: a caller that reads nothing is held for as long as a test needs it held


def _app(*, bound: int = 1024**3, in_flight: int = 100, slowest: int = 4 * 1024**2) -> web.Application:
    app = web.Application(middlewares=[requests_within_capacity, answers_taken_in_time])
    app[LIMITS] = BodyLimits(max_body_bytes=1024**2, max_blob_bytes=1024**3, read_timeout_s=TIMEOUT_S)
    app[IN_FLIGHT] = RequestsInFlight(in_flight)
    app[UNREAD_ANSWERS] = UnreadAnswers(bound, slowest_bytes_per_s=slowest)

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=ANSWER)

    async def dressed(request: web.Request) -> web.Response:
        answer = web.Response(text="é" * (len(ANSWER) // 2), content_type="text/csv", headers={"X-Page": "2"})
        answer.set_cookie("seen", "1")
        answer.force_close()
        return answer

    async def graphql(request: web.Request) -> web.Response:
        request[GRAPHQL_OPERATION] = request.query["operation"]  # as the GraphQL view names a validated document
        return web.Response(body=ANSWER)

    async def small(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/big", big)
    app.router.add_get("/dressed", dressed)
    app.router.add_get("/metrics", big)
    app.router.add_post("/graphql", graphql)
    app.router.add_get("/small", small)
    return app


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    listening = await listen_bounded(runner, "127.0.0.1", 0, OpenConnections(runner.server, 100))
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _not_reading(port: int, method: str, path: str) -> AsyncIterator[socket.socket]:
    """A caller that asks and then reads nothing (its receive buffer as small as the kernel allows)."""
    caller = socket.socket()
    caller.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    caller.setblocking(False)
    await asyncio.get_running_loop().sock_connect(caller, ("127.0.0.1", port))
    caller.sendall(f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n".encode())
    try:
        yield caller
    finally:
        caller.close()


async def _answer(port: int, method: str, path: str, *, piece: int = 1 << 20, every_s: float = 0) -> bytes:
    """The whole answer (head and body), read `piece` bytes at a time, `every_s` apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    received = bytearray()
    while chunk := await asyncio.wait_for(reader.read(piece), 30):
        received += chunk
        await asyncio.sleep(every_s)
    writer.close()
    return bytes(received)


def test_a_caller_that_reads_none_of_a_big_answer_is_cut_off_and_the_answer_let_go(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app()
    unread = app[UNREAD_ANSWERS]

    async def story() -> None:
        async with _serving(app) as port, _not_reading(port, "GET", "/big") as caller:
            await until(lambda: unread.answers == 1)
            assert unread.waiting == len(ANSWER)  # held for the caller, and counted

            await until(lambda: unread.cut_off == 1)
            await until(lambda: (unread.waiting, unread.answers) == (0, 0))
            received = bytearray()
            with contextlib.suppress(ConnectionResetError):
                while chunk := await asyncio.wait_for(asyncio.get_running_loop().sock_recv(caller, 1 << 20), 10):
                    received += chunk
            assert len(received) < len(ANSWER)  # what the sockets held, then the end: the rest was dropped

            assert (await _answer(port, "GET", "/small")).endswith(b"\r\n\r\nok")  # serving everyone else

    run(story())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # a cut, not a fault


def test_a_caller_that_reads_slowly_but_steadily_gets_the_whole_answer(run: Run) -> None:
    app = _app(slowest=1024**2)

    async def story() -> None:
        async with _serving(app) as port:
            answer = await _answer(port, "GET", "/big", piece=64 * 1024, every_s=0.01)  # about 4 MiB/s at most
        assert answer.endswith(ANSWER) and b"Content-Length: 16777216" in answer

    run(story())
    assert (app[UNREAD_ANSWERS].cut_off, app[UNREAD_ANSWERS].waiting) == (0, 0)


def test_an_answer_written_a_slice_at_a_time_keeps_what_its_handler_set(run: Run) -> None:
    async def story() -> None:
        async with _serving(_app()) as port:
            answer = await _answer(port, "GET", "/dressed")
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        assert "Content-Type: text/csv; charset=utf-8" in lines and "X-Page: 2" in lines
        assert [line for line in lines if line.startswith("Content-Length")] == [f"Content-Length: {len(body)}"]
        assert "Set-Cookie: seen=1; Path=/" in lines and "Connection: close" in lines
        assert body.decode() == "é" * (len(ANSWER) // 2)

    run(story())


def test_an_answer_being_taken_counts_against_the_requests_in_flight(run: Run) -> None:
    app = _app(in_flight=1, slowest=NEVER_CUT)

    async def story() -> None:
        async with _serving(app) as port, _not_reading(port, "GET", "/big"):
            await until(lambda: app[UNREAD_ANSWERS].answers == 1)
            assert (await _answer(port, "GET", "/small")).startswith(b"HTTP/1.1 503 ")  # the one slot is the answer's

    run(story())


@pytest.mark.parametrize("operation", ["query+run", None])
def test_past_the_bound_a_big_read_is_refused_with_503_and_retry_after(run: Run, operation: str | None) -> None:
    app = _app(bound=len(ANSWER) + 1024, slowest=NEVER_CUT)
    ask = ("POST", f"/graphql?operation={operation}") if operation else ("GET", "/big")

    async def story() -> None:
        async with _serving(app) as port, _not_reading(port, "GET", "/big"):
            await until(lambda: app[UNREAD_ANSWERS].answers == 1)
            refused = await _answer(port, *ask)
            head, _, message = refused.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head
            assert b"nothing was sent" in message and b"--max-unread-answer-bytes" in message
            assert (await _answer(port, "GET", "/small")).endswith(b"\r\n\r\nok")  # a small answer is never held back
            assert (await _answer(port, "GET", "/metrics")).endswith(ANSWER)  # nor a probe's
            assert app[UNREAD_ANSWERS].answers == 1  # the caller that reads nothing is still held

    run(story())


def test_past_the_bound_a_mutations_answer_is_still_sent(run: Run) -> None:
    # Its change is made: a 503 would tell the caller to make it again.
    app = _app(bound=len(ANSWER) + 1024, slowest=NEVER_CUT)

    async def story() -> None:
        async with _serving(app) as port, _not_reading(port, "GET", "/big"):
            await until(lambda: app[UNREAD_ANSWERS].answers == 1)
            answer = await _answer(port, "POST", "/graphql?operation=mutation+addAlias")
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(ANSWER)
            assert app[UNREAD_ANSWERS].answers == 1

    run(story())


def test_the_one_answer_being_written_is_sent_whatever_the_bound(run: Run) -> None:
    app = _app(bound=1024)

    async def story() -> None:
        async with _serving(app) as port:
            assert (await _answer(port, "GET", "/big")).endswith(ANSWER)

    run(story())
