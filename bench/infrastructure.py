"""Real Kafka and Postgres for a benchmark run: given by environment, or started here in a temp folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from modelreg.services.settings import Settings


@dataclass
class Infrastructure:
    kafka: str
    postgres: str

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
            database_url=dsn, kafka_bootstrap_servers=self.kafka, topic=f"bench.{name}", partitions=partitions
        )


@contextlib.contextmanager
def infrastructure() -> Iterator[Infrastructure]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelreg-bench-")))
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            from modelreg.services.infra.local_kafka import LocalKafka

            print("starting Kafka ...", file=sys.stderr)
            broker = stack.enter_context(LocalKafka(tmp / "kafka"))
            kafka = broker.bootstrap_servers
        postgres = os.environ.get("DATABASE_URL")
        if not postgres:
            from modelreg.services.infra.embedded_postgres import start_embedded_postgres

            print("starting PostgreSQL ...", file=sys.stderr)
            postgres, server = start_embedded_postgres(tmp / "postgres")
            stack.callback(server.cleanup)  # type: ignore[attr-defined]
        yield Infrastructure(kafka, postgres)


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
