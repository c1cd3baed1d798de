"""An answer its caller does not take in time is dropped with the connection, and the answers waiting to be taken
hold a bounded amount of memory together.

aiohttp writes a handler's answer after every middleware has returned and waits, without a deadline, for the
caller to take it. A caller that asked for a big answer (a GraphQL query may answer up to 128 MiB) and read none
of it held that answer in the server's memory for as long as it kept the connection open: three connections
asking for 90 MiB each held 550 MiB, and a few hundred would have taken the machine's memory. Nothing counted
them either, since the in-flight bound ends when the handler returns.

So an answer of over 64 KiB is written here, a slice at a time, inside the in-flight bound:
- once the slow-peer timeout has passed, the caller must have taken SLOWEST_BYTES_PER_S of it for every second
  since (the rule request bodies follow, services/http/body_limits.py), or the connection is cut and the answer
  dropped with it. One that reads nothing is cut about 75 s after the answer was ready: the timeout, and then the
  2-3 MiB the kernel's buffers of both ends take (Linux's default tcp_wmem and tcp_rmem), counted as taken;
- the answers being written hold at most `limit` bytes together. An answer that would take them past it is
  dropped and 503 with Retry-After sent instead when it is a read's (a GET, a GraphQL query): a read changed
  nothing, so asking again is safe. A mutation's answer is always sent (its change is made), so while the bound is
  full a GraphQL mutation is refused the same way before it is made (services/http/api.py). The one answer being
  written is sent whatever its size, or an answer over the limit could never be sent; the probes' always are.
- A slow reader at the rule's rate can keep an answer for as long as it takes (a 128 MiB one, about 35 minutes):
  the bound is the installation's, not a caller's, so a key holder reading eight such answers slowly has the big
  reads of others refused meanwhile (small answers are never held back). Shares per caller are not done.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from graphql_server.http.exceptions import HTTPException
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelreg.services.http.body_limits import LIMITS, SLOWEST_BYTES_PER_S, readable, refusal
from modelreg.services.http.metrics import GRAPHQL_OPERATION
from modelreg.services.http.requests_in_flight import PROBES, RETRY_AFTER_S

log = logging.getLogger(__name__)

# asyncio's transport takes this much before its writer waits for the caller: a smaller answer is left to aiohttp,
# as before (it holds no more than a slice does).
SMALL_ANSWER_BYTES = 64 * 1024
SLICE_BYTES = SMALL_ANSWER_BYTES
# The rule is a rate over tens of seconds: checking it every second costs nothing and cuts within a second of it.
CHECK_EVERY_S = 1.0


@dataclass(eq=False)  # registered with Prometheus, which keys collectors by identity
class UnreadAnswers(Collector):
    """The answers of one API process that are being written and not yet taken by their callers; /metrics shows
    their bytes and how many connections were cut."""

    limit: int
    # Past the slow-peer timeout, an answer still taken at this rate on average goes on (a link this slow takes a
    # 128 MiB answer in about 35 minutes).
    slowest_bytes_per_s: int = SLOWEST_BYTES_PER_S
    waiting: int = 0  # bytes of the answers being written, whole until each is taken
    answers: int = 0
    cut_off: int = 0

    def collect(self) -> Any:
        waiting = GaugeMetricFamily(
            "modelreg_http_unread_answer_bytes", "Bytes of answers being written that their callers have not taken"
        )
        waiting.add_metric([], self.waiting)
        yield waiting
        cut_off = CounterMetricFamily(
            "modelreg_http_answers_cut_off", "Connections cut because the caller did not take an answer in time"
        )
        cut_off.add_metric([], self.cut_off)
        yield cut_off

    def full_for(self, size: int) -> bool:
        return self.answers > 0 and self.waiting + size > self.limit

    def full(self) -> bool:
        """A mutation is refused before it is made while this holds (services/http/api.py): made, its answer would
        be sent whatever the bound."""
        return self.waiting >= self.limit

    def busy_message(self, what_happened: str) -> str:
        return (
            f"this server holds as many answers that their callers have not yet taken as it may "
            f"({readable(self.limit)}): {what_happened}; retry in {RETRY_AFTER_S} s, or ask for less in one request "
            "(the operator sets the bound: modelreg server/api --max-unread-answer-bytes, "
            "MODELREG_MAX_UNREAD_ANSWER_BYTES)"
        )


UNREAD_ANSWERS: web.AppKey[UnreadAnswers] = web.AppKey("unread_answers", UnreadAnswers)


class AnswersNotTaken(HTTPException):
    """A mutation refused before it is made while the bound is full (the GraphQL view raises it)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


@web.middleware
async def answers_taken_in_time(request: web.Request, handler: Any) -> web.StreamResponse:
    unread, probe = request.app[UNREAD_ANSWERS], request.path in PROBES
    response = await handler(request)
    body = response.body if isinstance(response, web.Response) and not response.prepared else None
    if request.method == "HEAD" or not isinstance(body, bytes) or len(body) <= SMALL_ANSWER_BYTES:
        return response  # a file (sent by the kernel), a stream its handler writes, or a small answer
    if response.chunked or response.compression:
        return response  # written by aiohttp as it asked (no route asks today): not bounded
    size = len(body)
    if unread.full_for(size) and _reads_only(request) and not probe:
        return _busy(request)
    unread.waiting += size
    unread.answers += 1
    try:
        return await _written_or_cut_off(request, response, body)
    finally:
        unread.waiting -= size
        unread.answers -= 1


def _busy(request: web.Request) -> web.Response:
    busy = request.app[UNREAD_ANSWERS].busy_message("nothing was sent")
    return refusal(request, 503, busy, code="UNAVAILABLE", retriable=True, headers={"Retry-After": RETRY_AFTER_S})


async def _written_or_cut_off(request: web.Request, response: web.Response, body: bytes) -> web.StreamResponse:
    """Writes the answer a slice at a time, and cuts the connection when the caller takes less of it than the rule
    allows; returns what was sent (aiohttp writes nothing more of it).

    In slices, so that the transport holds two slices at most (aiohttp waits for the caller past one) and not a copy
    of the whole answer beside the body, and so that what the caller took is known while the write waits for it;
    the rule is checked every CHECK_EVERY_S."""
    unread, timeout, transport = request.app[UNREAD_ANSWERS], request.app[LIMITS].read_timeout_s, request.transport
    sent = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
    sent.content_length = len(body)
    sent.cookies.update(response.cookies)
    if response.keep_alive is False:
        sent.force_close()
    written = 0  # bytes handed to the transport: what it still holds of them was not taken

    async def write() -> None:
        nonlocal written
        await sent.prepare(request)
        view = memoryview(body)
        for start in range(0, len(body), SLICE_BYTES):
            written = min(start + SLICE_BYTES, len(body))
            await sent.write(view[start:written])
        await sent.write_eof()

    writing = asyncio.ensure_future(write())
    started = asyncio.get_running_loop().time()
    try:
        while not (await asyncio.wait({writing}, timeout=CHECK_EVERY_S))[0]:
            elapsed = asyncio.get_running_loop().time() - started
            taken = written - (transport.get_write_buffer_size() if transport is not None else 0)
            if elapsed > timeout and taken < (elapsed - timeout) * unread.slowest_bytes_per_s:
                _cut_off(request, len(body), taken, elapsed)
                return sent
        writing.result()
    except ConnectionError:
        pass  # the caller went away: aiohttp sees the connection closed and writes nothing more
    finally:
        if not writing.done():
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    return sent


def _reads_only(request: web.Request) -> bool:
    if request.method == "GET":
        return True
    operation = request.get(GRAPHQL_OPERATION)
    return operation is not None and operation.startswith("query")


def _cut_off(request: web.Request, size: int, taken: int, elapsed: float) -> None:
    if request.transport is not None:
        request.transport.abort()  # close() would wait for the caller to take the rest: for ever
    request.app[UNREAD_ANSWERS].cut_off += 1
    log.warning(
        "%s %s: the caller at %s took %s of a %s answer in %.0f s; the connection was cut (a caller must take an "
        "answer at %s/s on average once %g s have passed)",
        request.method,
        request.path,
        request.remote,
        readable(max(taken, 0)),
        readable(size),
        elapsed,
        readable(request.app[UNREAD_ANSWERS].slowest_bytes_per_s),
        request.app[LIMITS].read_timeout_s,
    )
