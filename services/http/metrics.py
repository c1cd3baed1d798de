"""What operators watch: /metrics in Prometheus' text format, and liveness and readiness as separate probes.

Requests are counted and timed by a middleware as they happen. What the read models and the log know
(projection lag per projection and partition, parked streams, launch queues and job states, webhook
deliveries) is read at scrape time, from the health check's own connections, so that a scrape reflects
every replica's work and not just this process's: any replica answers for the installation.

- /livez: the process answers (its event loop runs). A failing liveness probe means restart it.
- /readyz: PostgreSQL and the event log answer. A failing readiness probe means send no traffic yet.

/metrics needs the metrics token or an admin key; the probes answer anyone, their error texts shown to those
(services/http/operator_views.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from graphql.utilities import get_operation_ast
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
)
from modelreg.events.database_trouble import TROUBLES_SEEN
from modelreg.services.http.blob_traffic import BLOB_BYTES, BlobTraffic
from modelreg.services.http.operator_views import SEEN_WITH, sees_the_figures

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# How long a probe or a scrape waits for the event log's end offsets. PostgreSQL gets 2 s (acquire(timeout=2));
# a Kafka broker that hangs (stopped, partitioned) is waited for by aiokafka for its request timeout, 40 s, far past
# a probe's own timeout: the probe failed without the answer saying which part, and its requests piled up.
EVENT_LOG_ANSWERS_WITHIN_S = 3.0


async def log_end_positions(event_log: Any, within_s: float = EVENT_LOG_ANSWERS_WITHIN_S) -> dict[int, int]:
    """The event log's end offsets, or TimeoutError saying so when it does not answer within `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            return dict(await event_log.end_positions())
    except TimeoutError:
        raise TimeoutError(f"the event log did not answer within {within_s:g} s") from None


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app: several apps in one test process do not collide
        self.requests = Counter(
            "modelreg_http_requests",
            "HTTP requests by operation and status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelreg_http_request_seconds",
            "Time to answer, by operation",
            ["operation"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.snapshot = InstallationSnapshot()
        self.registry.register(self.snapshot)


METRICS: web.AppKey[HttpMetrics] = web.AppKey("http_metrics", HttpMetrics)


GRAPHQL_OPERATION: web.RequestKey[str] = web.RequestKey("graphql_operation", str)


# aiohttp takes any token as a method: a caller's made-up ones would each make a series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def operation_of(request: web.Request) -> str:
    """The route's template (not the path, whose digests and ids would make a series per request), and for a
    GraphQL request whose document passed validation, what it does (`POST /graphql mutation addAlias`)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _METHODS else "OTHER"
    graphql = request.get(GRAPHQL_OPERATION)
    return f"{method} {route} {graphql}" if graphql else f"{method} {route}"


def graphql_operation(document: DocumentNode, operation_name: str | None) -> str | None:
    """A validated operation's type and its first top-level field (`query registeredModel and more`).

    Only names from the schema: a client's operation name or aliases would add a series per caller's whim."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    selections: tuple[SelectionNode, ...] = tuple(operation.selection_set.selections)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    more = len(selections) > 1
    for _ in range(32):  # validation refused fragment cycles and deep documents; this bounds the walk anyway
        first = selections[0] if selections else None
        if isinstance(first, FieldNode):
            return f"{operation.operation.value} {first.name.value}{' and more' if more else ''}"
        if isinstance(first, FragmentSpreadNode) and first.name.value in fragments:
            selections = tuple(fragments[first.name.value].selection_set.selections)
        elif isinstance(first, InlineFragmentNode):
            selections = tuple(first.selection_set.selections)
        else:
            break
        more = more or len(selections) > 1
    return operation.operation.value


@web.middleware
async def measured(request: web.Request, handler: Any) -> web.StreamResponse:
    metrics, started, status = request.app[METRICS], time.perf_counter(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        operation = operation_of(request)
        metrics.requests.labels(operation, str(status)).inc()
        metrics.latency.labels(operation).observe(time.perf_counter() - started)


class InstallationSnapshot(Collector):
    """Figures read from the log and the read models just before each scrape."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def collect(self) -> Iterator[Any]:
        v = self.values
        if "failed" in v:  # not before the first scrape's reading
            read = GaugeMetricFamily(
                "modelreg_installation_reading_ok",
                "1 when this scrape read the part's figures; 0 when it could not (they are missing; see the log)",
                labels=["part"],
            )
            for part in READ_PARTS:
                read.add_metric([part], 0 if part in v["failed"] else 1)
            yield read
        yield GaugeMetricFamily(
            "modelreg_database_trouble",
            "1 while PostgreSQL answers but fails this process's work for a reason of its own, its disk full say "
            "(/healthz says which)",
            value=0 if TROUBLES_SEEN.current() is None else 1,
        )
        ends = GaugeMetricFamily(
            "modelreg_event_log_end_offset", "Events appended, per partition", labels=["partition"]
        )
        for partition, end in sorted(v.get("ends", {}).items()):
            ends.add_metric([str(partition)], end)
        yield ends
        lag = GaugeMetricFamily(
            "modelreg_projection_lag_events", "Events not yet applied", labels=["projection", "partition"]
        )
        for (projection, partition), n in sorted(v.get("lag", {}).items()):
            lag.add_metric([projection, str(partition)], n)
        yield lag
        for name, doc, key in (
            ("modelreg_parked_streams", "Streams waiting on an event that failed to apply", "parked"),
            ("modelreg_dead_letters", "Messages that could not be decoded", "dead"),
        ):
            family = GaugeMetricFamily(name, doc, labels=["projection"])
            for projection, n in sorted(v.get(key, {}).items()):
                family.add_metric([projection], n)
            yield family
        depth = GaugeMetricFamily("modelreg_launch_queue_depth", "Jobs waiting in a queue", labels=["queue"])
        for queue, n in sorted(v.get("queued", {}).items()):
            depth.add_metric([queue], n)
        yield depth
        jobs = GaugeMetricFamily("modelreg_launch_jobs", "Launch jobs by state", labels=["state"])
        for state, n in sorted(v.get("jobs", {}).items()):
            jobs.add_metric([state], n)
        yield jobs
        deliveries = CounterMetricFamily(
            "modelreg_webhook_deliveries", "Webhook delivery attempts by outcome", labels=["outcome"]
        )
        for outcome, n in sorted(v.get("webhooks", {}).items()):
            deliveries.add_metric([outcome], n)
        yield deliveries
        traffic: BlobTraffic = v.get("blobs", BlobTraffic())
        blob = CounterMetricFamily("modelreg_blob_bytes", "Artifact file bytes, by direction", labels=["direction"])
        blob.add_metric(["in"], traffic.bytes_in)
        blob.add_metric(["out"], traffic.bytes_out)
        yield blob


# The parts a scrape reads the installation's figures from (each reported by modelreg_installation_reading_ok), as
# the log names them.
READ_PARTS = {"event_log": "the event log", "postgres": "PostgreSQL"}
POSTGRES_ANSWERS_WITHIN_S = 3.0


async def read_installation(pool: Any, event_log: Any, projections: list[str]) -> dict[str, Any]:
    """The figures of each part that answered, and under "failed" why each other part did not. Read one part
    at a time: with PostgreSQL down, the log's end offsets were dropped with its figures, and every series
    went missing without a word (alerts on lag went quiet exactly then)."""
    reading: dict[str, Any] = {"failed": {}}
    try:
        reading["ends"] = await log_end_positions(event_log)
    except Exception as exc:
        reading["failed"]["event_log"] = str(exc) or type(exc).__name__
    try:
        # Bounded as the log's reading is: a PostgreSQL that hangs must not hang the scrape.
        tables = await asyncio.wait_for(_read_tables(pool, event_log.topic), POSTGRES_ANSWERS_WITHIN_S)
    except TimeoutError:
        reading["failed"]["postgres"] = f"PostgreSQL did not answer within {POSTGRES_ANSWERS_WITHIN_S:g} s"
        return reading
    except Exception as exc:
        reading["failed"]["postgres"] = str(exc) or type(exc).__name__
        return reading
    positions, jobs = tables.pop("positions"), tables.pop("jobs")
    by_state: dict[str, int] = {}
    for r in jobs:
        by_state[r["state"]] = by_state.get(r["state"], 0) + r["n"]
    reading |= {
        "parked": {r["projection"]: r["n"] for r in tables["parked"]},
        "dead": {r["projection"]: r["n"] for r in tables["dead"]},
        "queued": {r["queue"]: r["n"] for r in jobs if r["state"] == "queued"},
        "jobs": by_state,
        "webhooks": {("delivered" if r["ok"] else "failed"): r["n"] for r in tables["webhooks"]},
    }
    if "ends" in reading:  # lag is the log's end less what each projection applied: both parts are needed
        applied = {(r["projection"], r["partition"]): r["next_offset"] for r in positions}
        reading["lag"] = {
            (name, partition): max(end - applied.get((name, partition), 0), 0)
            for name in projections
            for partition, end in reading["ends"].items()
        }
    return reading


async def projection_tables(conn: Any, topic: str) -> dict[str, Any]:
    """Where each projection is on the topic, and its parked streams and dead letters counted (/healthz too)."""
    return {
        "positions": await conn.fetch(
            "SELECT projection, partition, next_offset FROM projection_positions WHERE topic = $1", topic
        ),
        "parked": await conn.fetch("SELECT projection, count(*) AS n FROM parked_streams GROUP BY projection"),
        "dead": await conn.fetch("SELECT projection, count(*) AS n FROM dead_letters GROUP BY projection"),
    }


async def _read_tables(pool: Any, topic: str) -> dict[str, Any]:
    async with pool.acquire(timeout=POSTGRES_ANSWERS_WITHIN_S) as conn:
        return {
            **await projection_tables(conn, topic),
            "jobs": await conn.fetch("SELECT queue, state, count(*) AS n FROM launch_jobs GROUP BY queue, state"),
            "webhooks": await conn.fetch(
                "SELECT (status_code BETWEEN 200 AND 299) AS ok, count(*) AS n FROM webhook_deliveries GROUP BY 1"
            ),
        }


# A scrape every 15 s while PostgreSQL is down for an hour: one line a minute says so, not 240.
SAY_FAILED_READINGS_EVERY_S = 60.0


class FailedReadings:
    """Says in the log that a part's figures could not be read, at most once every `every_s` per part, with how
    many readings failed since it last said so."""

    def __init__(self, every_s: float = SAY_FAILED_READINGS_EVERY_S) -> None:
        self.every_s = every_s
        self._said_at: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def note(self, failed: dict[str, str], now: float) -> None:
        for part, error in failed.items():
            self._unsaid[part] = self._unsaid.get(part, 0) + 1
            said_at = self._said_at.get(part)
            if said_at is not None and now - said_at < self.every_s:
                continue
            times, self._unsaid[part], self._said_at[part] = self._unsaid[part], 0, now
            since = f" ({times} readings failed since the last line)" if times > 1 else ""
            log.warning(
                "/metrics could not read %s (%s): its figures are missing from the scrape, and "
                'modelreg_installation_reading_ok{part="%s"} is 0%s',
                READ_PARTS.get(part, part),
                error,
                part,
                since,
            )


# Each scrape read the installation's figures on the health check's own two connections: a caller asking without
# pause (when /metrics needed no key) queued /healthz and /readyz behind its reads (/readyz, given 2 s, failed, and
# the replica was taken out of service). Scrapes close together share one reading, at most this old.
READING_FRESH_FOR_S = 1.0


class SharedReading:
    """The value of `read()`, read once for every caller asking while it is read or within `fresh_for_s` after."""

    def __init__(self, read: Callable[[], Awaitable[dict[str, Any]]], fresh_for_s: float = READING_FRESH_FOR_S) -> None:
        self.read = read
        self.fresh_for_s = fresh_for_s
        self._reading: asyncio.Future[dict[str, Any]] | None = None
        self._read_at = 0.0

    async def __call__(self) -> dict[str, Any]:
        reading = self._reading
        if reading is None or (reading.done() and not self._fresh(reading)):
            reading = self._reading = asyncio.ensure_future(self.read())
            reading.add_done_callback(self._read_now)
        # Shielded: a scraper that hangs up does not cancel the reading the others wait for.
        return dict(await asyncio.shield(reading))

    def _fresh(self, reading: asyncio.Future[dict[str, Any]]) -> bool:
        """Read well and lately: a failed reading is not kept (PostgreSQL back, the next scrape shows it)."""
        failed = reading.cancelled() or reading.exception() is not None
        return not failed and time.monotonic() - self._read_at < self.fresh_for_s

    def _read_now(self, reading: asyncio.Future[dict[str, Any]]) -> None:
        self._read_at = time.monotonic()
        if not reading.cancelled():
            reading.exception()  # retrieved: a failed reading is told to its callers, not logged as never seen


# The process's parts that stopped and will not start again (restart_on_failure.py), each with why: /healthz shows
# them. Not /readyz: the API still serves (the upgraded processes' projectors keep its tables), and a rolling upgrade
# would otherwise take every replica of the build before out of service at once, when the first new one migrates.
STOPPED_PARTS = web.AppKey("stopped_parts", dict[str, str])


def add_operations_routes(app: web.Application, pool_key: Any, log_key: Any, projections: list[str]) -> None:
    """/metrics, /livez and /readyz; `pool_key` and `log_key` name the app's health pool and event log."""
    app[METRICS] = HttpMetrics()
    app[STOPPED_PARTS] = {}
    if BLOB_BYTES not in app:
        app[BLOB_BYTES] = BlobTraffic()
    # Outermost: the requests refused before a handler ran (over the in-flight bound, a body too big or too slow,
    # no key, PostgreSQL away) are counted too; they are what an operator looks for when callers complain.
    app.middlewares.insert(0, measured)
    failed_readings = FailedReadings()

    async def read_and_say_what_failed() -> dict[str, Any]:
        reading = await read_installation(app[pool_key], app[log_key], projections)
        failed_readings.note(reading["failed"], time.monotonic())
        return reading

    installation = SharedReading(read_and_say_what_failed)

    async def metrics(request: web.Request) -> web.Response:
        if not await sees_the_figures(request):  # queue names, job counts, the log's length: the installation's own
            raise web.HTTPUnauthorized(
                text=f"/metrics is shown to {SEEN_WITH}. Prometheus sends the token with `authorization: "
                "{credentials_file: <file holding it>}` in the scrape job (docs/scaling.md)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        snapshot = request.app[METRICS].snapshot
        try:
            snapshot.values = await installation()
        except Exception as exc:  # not one part's failure (each is caught): said as a failure of both
            snapshot.values = {"failed": dict.fromkeys(READ_PARTS, repr(exc))}
            failed_readings.note(snapshot.values["failed"], time.monotonic())
        snapshot.values["blobs"] = request.app[BLOB_BYTES]
        return web.Response(body=generate_latest(request.app[METRICS].registry), headers={"Content-Type": CONTENT_TYPE})

    async def livez(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        problems: dict[str, str] = {}
        try:
            async with request.app[pool_key].acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except Exception as exc:
            problems["postgres"] = str(exc) or type(exc).__name__
        try:
            await log_end_positions(request.app[log_key])
        except Exception as exc:
            problems["event_log"] = str(exc) or type(exc).__name__
        if problems:
            if not await sees_the_figures(request):  # which part, not its error (a host, a user, a topic)
                problems = {part: f"not answering: details for {SEEN_WITH}" for part in problems}
            return web.json_response({"status": "not ready", **problems}, status=503)
        return web.json_response({"status": "ready"})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
