"""Real Kafka and Postgres for a benchmark run: given by environment, or started here in a temp folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from modelreg.services.settings import Settings


@dataclass
class Infrastructure:
    kafka: str
    postgres: str
    kafka_folder: Path | None = None  # where the broker runs, when this run started it
    postgres_folder: Path | None = None  # the same for PostgreSQL

    def local_processes(self) -> dict[str, psutil.Process]:
        """The broker's and PostgreSQL's main processes, for their CPU; those this run did not start are left out."""
        from modelreg.services.infra.embedded_postgres import postmaster_pid

        found = {}
        if self.kafka_folder is not None and (pid_file := self.kafka_folder / "kafka.pid").exists():
            with contextlib.suppress(psutil.Error, ValueError):
                found["Kafka broker"] = psutil.Process(int(pid_file.read_text()))
        if self.postgres_folder is not None and (pid := postmaster_pid(self.postgres_folder)) is not None:
            with contextlib.suppress(psutil.Error):
                found["PostgreSQL"] = psutil.Process(pid)
        return found

    async def fresh_settings(self, partitions: int = 6) -> Settings:
        """A new database and topic, so each measurement starts empty."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.postgres)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        from urllib.parse import urlsplit, urlunsplit

        dsn = urlunsplit(urlsplit(self.postgres)._replace(path=f"/{name}"))
        return Settings(
            database_url=dsn,
            kafka_bootstrap_servers=self.kafka,
            topic=f"bench.{name}",
            partitions=partitions,
            missing_topic="create",
        )


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User and system CPU of these processes and of their children, running or ended (PostgreSQL's backends
    come and go with their connections)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
    return total


@contextlib.contextmanager
def infrastructure() -> Iterator[Infrastructure]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelreg-bench-")))
        kafka, kafka_folder = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), None
        if not kafka:
            from modelreg.services.infra.local_kafka import LocalKafka

            print("starting Kafka ...", file=sys.stderr)
            kafka_folder = tmp / "kafka"
            broker = stack.enter_context(LocalKafka(kafka_folder))
            kafka = broker.bootstrap_servers
        postgres, postgres_folder = os.environ.get("DATABASE_URL"), None
        if not postgres:
            from modelreg.services.infra.embedded_postgres import start_embedded_postgres

            print("starting PostgreSQL ...", file=sys.stderr)
            postgres_folder = tmp / "postgres"
            postgres, server = start_embedded_postgres(postgres_folder)
            stack.callback(server.cleanup)  # type: ignore[attr-defined]
        yield Infrastructure(kafka, postgres, kafka_folder, postgres_folder)


def modelreg_process(settings: Settings, *args: str, capture: bool = False) -> subprocess.Popen[bytes]:
    """Start a modelreg process (projector, api) on the benchmark's database and log (Kafka if set)."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"DATABASE_URL": settings.database_url, "MODELREG_TOPIC": settings.topic}
    if settings.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", *args],
        env=env,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
