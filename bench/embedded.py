"""Embedded benchmark: `modelreg server` with no flags (embedded PostgreSQL holding the event log too).

Prints the time until a fresh server answers (first start, which creates the database, and a restart),
the end-to-end rate on the Postgres event log, and read-your-writes command latency against the server.
The last line is key=value pairs. Usage: python bench/embedded.py [--events N] [--commands N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' generated histories

from infrastructure import Infrastructure  # noqa: E402
from ingest import LINK, LOG, SET_ALIAS, WARM_UP_COMMANDS, _projector_processes, say, wait_applied  # noqa: E402
from support.history import registry_history  # noqa: E402

from modelreg.events.postgres_log import PostgresEventLog  # noqa: E402
from modelreg.projections.migrations import migrate  # noqa: E402
from modelreg.services.infra.database import create_pool  # noqa: E402
from modelreg.services.infra.embedded_postgres import start_embedded_postgres  # noqa: E402
from modelreg.services.projections_catalog import all_migrations  # noqa: E402


async def until_ready(url: str, server: subprocess.Popen[bytes], started: float) -> float:
    async with aiohttp.ClientSession() as http:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"modelreg server exited with {server.returncode}")
            try:
                async with http.get(url + "/healthz") as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    command = [
        sys.executable,
        "-m",
        "modelreg.services.cli",
        "server",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    started = time.perf_counter()
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), started


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


async def command_latency(url: str, commands: int, key: str) -> list[float]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(600):  # the admin key works once the identity projection has applied it
            async with http.post(url + "/graphql", json={"query": "{ viewer { id } }"}) as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)

        async def gql(query: str, variables: dict) -> dict:
            async with http.post(url + "/graphql", json={"query": query, "variables": variables}) as response:
                body = await response.json()
                if "errors" in body:
                    raise RuntimeError(body["errors"])
                return body["data"]

        ids = []
        for n in range(2):
            content = f"model {n}".encode()
            digest = "sha256:" + hashlib.sha256(content).hexdigest()
            async with http.put(f"{url}/blobs/{digest}", data=content) as stored:
                stored.raise_for_status()  # a manifest names stored blobs only
            files = [{"path": "model.bin", "size": len(content), "digest": digest}]
            data = await gql(
                LOG, {"i": {"entity": "acme", "project": "bench", "name": "m", "type": "model", "files": files}}
            )
            ids.append(data["logArtifactVersion"]["id"])
            await gql(LINK, {"id": ids[-1]})
        for i in range(WARM_UP_COMMANDS):
            await gql(SET_ALIAS, {"id": ids[i % 2]})
        latencies = []
        for i in range(commands):
            started = time.perf_counter()
            await gql(SET_ALIAS, {"id": ids[i % 2]})
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies


async def end_to_end(infra: Infrastructure, events_n: int) -> float:
    settings = await infra.fresh_settings()
    settings = type(settings)(database_url=settings.database_url, topic=settings.topic)  # no Kafka: the Postgres log
    events = registry_history(events_n, collections=200, models=20)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    await migrate(pool, all_migrations())
    log = PostgresEventLog(settings.database_url, settings.topic)
    await log.start()
    projectors = _projector_processes(settings, split=False)  # one process, as `modelreg server` runs them
    try:
        await asyncio.sleep(2)
        started = time.perf_counter()
        for i in range(0, len(events), 1000):
            await log.append(events[i : i + 1000])
        await wait_applied(pool, settings.topic, len(events), "end to end")
        return len(events) / (time.perf_counter() - started)
    finally:
        for p in projectors:
            stop(p)
        await log.close()
        await pool.close()


async def main(events_n: int, commands: int) -> None:
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as tmp:
        port = 18000 + os.getpid() % 1000
        url = f"http://127.0.0.1:{port}"
        server, started = start_server(Path(tmp) / "data", port)
        first_ready = await until_ready(url, server, started)
        stop(server)
        server, started = start_server(Path(tmp) / "data", port)
        ready = await until_ready(url, server, started)
        say(
            f"modelreg server ready:   first start {first_ready:.2f} s (creates the database), "
            f"restart {ready:.2f} s   target <= 3 s"
        )
        try:
            latencies = await command_latency(url, commands, (Path(tmp) / "data" / "admin-api-key").read_text().strip())
        finally:
            stop(server)
        p50, p99 = statistics.median(latencies), statistics.quantiles(latencies, n=100)[98]
        say(
            f"set-alias with read-your-writes (one server process):  p50 {p50:.1f} ms, p99 {p99:.1f} ms   "
            "target p50 <= 5"
        )

        dsn, pg = start_embedded_postgres(Path(tmp) / "bench-postgres")
        try:
            rate = await end_to_end(Infrastructure(kafka="", postgres=dsn), events_n)
        finally:
            pg.cleanup()  # type: ignore[attr-defined]
        gc.collect()
        say(
            f"end to end on the Postgres log (append -> both projections applied): {rate:,.0f} events/s   "
            "target >= 5,000"
        )
    say(
        f"end_to_end_events_per_s={rate:.0f} command_p50_ms={p50:.1f} command_p99_ms={p99:.1f} "
        f"server_ready_s={ready:.2f} server_first_start_ready_s={first_ready:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.commands))
