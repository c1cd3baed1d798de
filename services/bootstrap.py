"""Wires a process once: its connection pool, its event log, projection progress and the projections it runs.

Every entry point (server, api, projector, triggers, rebuild) takes its parts from here, so a process that
does several jobs (`modelreg server`: the API, the projections and the automations) opens one pool and one
event log, and its projections read the log through one reader. Other parts (blob stores, metrics) are
built by their own adapters from `settings` and use `pool` and `event_log` from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.errors import KafkaConnectionError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential

from modelreg.events.log import EventLog, TopicMissing
from modelreg.events.written import RecentlyWritten
from modelreg.projections.log_reader import SharedLogReader
from modelreg.projections.migrations import migrate
from modelreg.projections.positions import applied_ends, log_shorter_than_applied, topics_projected
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.automations.webhook_key_fingerprint import WebhookKeysDiffer, check_webhook_key
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations, projection, shown_to_commands
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)

# How long a process waits at its start for a broker that does not answer yet.
BROKER_WAIT_S = 120.0
# How long a process stopping waits for its parts to close gracefully (each connection said goodbye).
PARTS_CLOSED_WITHIN_S = 5.0
T = TypeVar("T")

# Set by the command line to the event its SIGINT and SIGTERM set (services/cli.py): a process waiting at its start
# for PostgreSQL or Kafka (up to BROKER_WAIT_S) stops when told to, instead of ignoring the signal until then.
STOP_WAITING: ContextVar[asyncio.Event | None] = ContextVar("STOP_WAITING", default=None)


class StoppedWhileWaiting(Exception):
    """A signal came while the process waited for a server at its start: nothing was started, it just stops."""


if TYPE_CHECKING:  # the command path is imported where it is used: projector and rebuild processes start faster
    from modelreg.projections.progress import ProjectionProgress
    from modelreg.services.commands.application import Application


class ProcessParts:
    """What one process shares between its jobs. Built by `process_parts`, closed with it."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, event_log: EventLog) -> None:
        self.settings = settings
        self.pool = pool
        self.event_log = event_log
        self._progress: ProjectionProgress | None = None

    async def progress(self) -> ProjectionProgress:
        """How far each projection got (read-your-writes waits on it): one listener per process."""
        from modelreg.projections.progress import ProjectionProgress

        if self._progress is None:
            progress = ProjectionProgress(self.pool)
            await progress.start()
            self._progress = progress
        return self._progress

    async def application(self, **options: Any) -> Application:
        """The command path on these parts (options: Application's keyword arguments, e.g. blobs)."""
        from modelreg.projections.registry_queries import RegistryQueries
        from modelreg.services.commands.application import Application

        options.setdefault("read_your_writes_timeout_s", self.settings.read_your_writes_timeout_s)
        return Application(
            self.event_log,
            RegistryQueries(self.pool),
            await self.progress(),
            projections=shown_to_commands(),
            **options,
        )

    def log_reader(self, names: Sequence[str] = (), **options: Any) -> SharedLogReader:
        """The projections named (default: all) fed by one reader of the log (options: its keyword arguments)."""
        runners = [ProjectionRunner(projection(name), self.event_log, self.pool) for name in names or PROJECTIONS]
        if self.event_log.written is None:  # what this process appends, its projections need not decode
            self.event_log.written = RecentlyWritten()
        return SharedLogReader(runners, self.event_log, written=self.event_log.written, **options)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(PARTS_CLOSED_WITHIN_S):
                if self._progress is not None:
                    await self._progress.close()
                await self.event_log.close()
                await self.pool.close()
        except TimeoutError:
            # A connection whose PostgreSQL hangs (a partition, a failed-over primary gone silent) answers no goodbye,
            # and one a cut-short task holds is never given back: a graceful close waited until TCP gave up, about 15
            # minutes, and the process neither stopped nor started again (the triggers replica that lost its lock).
            log.warning(
                "the process's parts did not close within %g s: its connections are dropped", PARTS_CLOSED_WITHIN_S
            )
            self.pool.terminate()


async def open_parts(
    settings: Settings, *, pool_size: int = 10, durable_commits: bool = True, refuses_a_short_log: bool = True
) -> ProcessParts:
    """Open the pool, bring the read-model schema up to date, start the event log. Close what it returns.

    `durable_commits=False` is for processes that only run projections (see create_pool); a process that
    also takes commands keeps durable commits, and its projections turn them off per batch. `refuses_a_short_log`:
    a log that ends before what the read models applied is refused (NeverReached), but by a rebuild, its remedy."""
    pool = await database_pool(settings, pool_size, durable_commits)
    event_log: EventLog | None = None
    try:
        await migrate(pool, all_migrations())
        await agreeing_with_the_installation(pool, settings)
        event_log = event_log_for(settings, pool, projected_topics=await topics_projected(pool))
        await started(event_log, settings)
        if refuses_a_short_log:
            await not_shorter_than_applied(pool, event_log)
    except BaseException:
        if event_log is not None:
            await event_log.close()
        await pool.close()
        raise
    return ProcessParts(settings, pool, event_log)


async def not_shorter_than_applied(pool: asyncpg.Pool, event_log: EventLog) -> None:
    """Refuses (NeverReached) a log that ends before what the read models applied: the events appended next would be
    skipped by every projection, each acknowledged and never shown."""
    applied = await applied_ends(pool, event_log.topic)  # before the ends: an append in between is no alarm
    if applied and (said := log_shorter_than_applied(event_log.topic, await event_log.end_positions(), applied)):
        raise NeverReached(said)


async def agreeing_with_the_installation(pool: asyncpg.Pool, settings: Settings) -> None:
    """Refuses, in one line (NeverReached), a process whose settings differ from what its database records of the
    installation's other processes: its webhook key. (A topic its database was not built from is refused as the event
    log starts: `projected_topics`.)"""
    try:
        await check_webhook_key(
            pool,
            settings.webhook_secret_key,
            records=settings.records_webhook_key,
            replaces=settings.replace_webhook_key,
        )
    except WebhookKeysDiffer as exc:
        raise NeverReached(str(exc)) from exc


async def database_pool(
    settings: Settings, pool_size: int, durable_commits: bool, wait_s: float = BROKER_WAIT_S
) -> asyncpg.Pool:
    """The pool, waiting for a PostgreSQL that does not answer yet (restarting, or starting beside this process:
    a host's reboot) as for the broker; a process that exited at once stayed down once it was back."""
    where = _without_password(settings.database_url)

    async def pool() -> asyncpg.Pool:
        try:
            return await create_pool(
                settings.database_url, min_size=1, max_size=pool_size, durable_commits=durable_commits
            )
        except ConnectionError as exc:
            if "rejected SSL upgrade" not in str(exc):
                raise
            # A server without SSL answers so at once, and waiting will not change it (it was waited for 2 minutes).
            raise asyncpg.ClientConfigurationError(
                f"{exc}: DATABASE_URL's sslmode asks for SSL, which this server does not take; turn SSL on there "
                "(ssl = on in postgresql.conf) or use sslmode=prefer or disable"
            ) from exc

    try:
        return await _waiting_for(f"PostgreSQL at {where}", NOT_ANSWERING, wait_s, pool)
    except (*NOT_ANSWERING, *MISCONFIGURED) as exc:
        raise postgres_never_reached(where, wait_s, exc) from exc


def postgres_never_reached(where: str, wait_s: float, exc: BaseException) -> NeverReached:
    """The one line a process exits with when PostgreSQL refused it (`exc`) at its start, after waiting `wait_s`."""
    if isinstance(exc, MISCONFIGURED):  # waiting would not mend it
        return NeverReached(f"PostgreSQL at {where} refused this process: {exc}: check DATABASE_URL")
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return NeverReached(
            f"PostgreSQL at {where} had no connection free for {wait_s:.0f} s ({exc}): raise its max_connections, "
            "or stop what holds its connections (other processes, idle psql sessions: pg_stat_activity lists them)"
        )
    return NeverReached(
        f"PostgreSQL at {where} did not answer for {wait_s:.0f} s ({exc}): check DATABASE_URL and that the "
        "database is up"
    )


class NeverReached(RuntimeError):
    """PostgreSQL or Kafka not reached at a part's start, after waiting, or refusing its settings, or settings that
    differ from what the database records of the installation (its topic, its webhook key): a setting to check. A
    process whose part never ran exits with this one line; one that ran waits out an outage instead
    (restart_on_failure)."""


# What PostgreSQL answers to settings no wait mends: no such database, role or password; a DSN it cannot read.
MISCONFIGURED = (
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.ClientConfigurationError,
)


# Refused, no socket yet, up but still starting (recovering after a crash), or every connection it allows taken
# (max_connections, or a role's limit): other processes let go of theirs, so a process waits as for a restart.
NOT_ANSWERING = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def _without_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


async def started(event_log: EventLog, settings: Settings, wait_s: float = BROKER_WAIT_S) -> None:
    """Start the event log, waiting for a broker that does not answer yet (restarting, or starting beside this
    process) rather than exiting; one still away after `wait_s` is a setting to check, and the error says so. A topic
    that does not exist is waited for alike where the settings say so (a projector started beside the first API,
    which creates it), else refused at once (TopicMissing, naming the topics there are); one the settings say to
    create, beside a database built from another (NeverReached: a mistyped --topic, not a new installation)."""

    async def start() -> None:
        try:
            await event_log.start()
        except (KafkaConnectionError, *NOT_ANSWERING):
            with contextlib.suppress(Exception):
                await event_log.close()  # what did start, for the next attempt to start afresh
            raise

    not_answering: tuple[type[BaseException], ...]
    if settings.kafka_bootstrap_servers:
        what, not_answering = f"Kafka at {settings.kafka_bootstrap_servers}", (KafkaConnectionError,)
        if settings.missing_topic == "wait":
            not_answering += (TopicMissing,)
    else:  # the log is PostgreSQL's: one opening its own pool (export, import) waits for it as database_pool does
        what, not_answering = f"PostgreSQL at {_without_password(settings.database_url)}", NOT_ANSWERING
    try:
        await _waiting_for(what, not_answering, wait_s, start)
    except (*NOT_ANSWERING, *MISCONFIGURED) as exc:
        if settings.kafka_bootstrap_servers:
            raise
        raise postgres_never_reached(_without_password(settings.database_url), wait_s, exc) from exc
    except KafkaConnectionError as exc:
        raise NeverReached(
            f"{what} did not answer for {wait_s:.0f} s ({exc}): check KAFKA_BOOTSTRAP_SERVERS and that the broker is up"
        ) from exc
    except TopicMissing as exc:
        if settings.missing_topic == "refuse":
            raise
        if settings.missing_topic == "create" or not settings.kafka_bootstrap_servers:
            raise NeverReached(str(exc)) from exc  # its database was built from another topic: no wait mends that
        raise NeverReached(f"waited {wait_s:.0f} s for the topic: {exc}") from exc


async def _waiting_for(
    what: str, not_answering: tuple[type[BaseException], ...], wait_s: float, attempt: Callable[[], Awaitable[T]]
) -> T:
    """`attempt()`'s result, tried again while it fails as a server that does not answer yet fails, saying so; or
    StoppedWhileWaiting, once STOP_WAITING is set (a connection attempt that hangs is cut short too)."""
    stop = STOP_WAITING.get()
    if stop is None:
        return await _retried(what, not_answering, wait_s, attempt)
    retried = asyncio.ensure_future(_retried(what, not_answering, wait_s, attempt))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({retried, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not retried.done():
            retried.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retried
    if retried.cancelled():
        raise StoppedWhileWaiting(f"stopped while waiting for {what}: nothing was started")
    return retried.result()


async def _retried(
    what: str, not_answering: tuple[type[BaseException], ...], wait_s: float, attempt: Callable[[], Awaitable[T]]
) -> T:

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("waiting for %s (%s)", what, error)

    async for tried in AsyncRetrying(
        retry=retry_if_exception_type(not_answering),
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=0.5, max=5),
        before_sleep=waiting,
        reraise=True,
    ):
        with tried:
            return await attempt()
    raise AssertionError("unreachable: the retries return or raise")


@contextlib.asynccontextmanager
async def process_parts(
    settings: Settings, *, pool_size: int = 10, durable_commits: bool = True, refuses_a_short_log: bool = True
) -> AsyncIterator[ProcessParts]:
    parts = await open_parts(
        settings, pool_size=pool_size, durable_commits=durable_commits, refuses_a_short_log=refuses_a_short_log
    )
    try:
        yield parts
    finally:
        await parts.close()


@contextlib.asynccontextmanager
async def given_or_own(
    parts: ProcessParts | None, settings: Settings, *, pool_size: int = 10, durable_commits: bool = True
) -> AsyncIterator[ProcessParts]:
    """The process's parts when a caller wired them, else parts of this job's own (closed after it)."""
    if parts is not None:
        yield parts
        return
    async with process_parts(settings, pool_size=pool_size, durable_commits=durable_commits) as own:
        yield own
