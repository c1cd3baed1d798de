"""`modelreg server` outlives its PostgreSQL: the embedded one is started again when it dies, an external
one is waited for (503 meanwhile), and whatever the server started is stopped when it stops."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.leftovers import stop_postgres_in
from support.story import LOG_VERSION, version_input

from modelreg.services.infra.embedded_postgres import postgres_processes, postmaster_pid, start_embedded_postgres

MODEL_QUERY = '{ artifactVersion(ref: "acme/nature/classifier:latest") { id version } }'


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder outside pytest's temporary root: as root, PostgreSQL runs as an unprivileged user that
    must enter it, and a concurrent pytest session sets that root back to mode 700 at any moment."""
    path = Path(tempfile.mkdtemp(prefix="modelreg-server-"))
    path.chmod(0o755)
    yield path
    stop_postgres_in(path)  # a test that failed half-way may have left one
    shutil.rmtree(path, ignore_errors=True)


class ServerProcess:
    """A `modelreg server` subprocess whose output is kept (read by a thread, so it never blocks)."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        command = ["server", "--data-dir", str(data_dir), "--port", str(port), *extra]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelreg.services.cli", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")},
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self._ready.wait(180)
        if self.url is None:
            self.stop()
            raise AssertionError("modelreg server was not ready:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if self.url is None and (match := re.search(r"GraphQL: (http://\S+)", line)):
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(how)
        return self.process.wait(120)


async def post(url: str, query: str, variables: dict | None = None, key: str | None = None) -> tuple[int, dict | str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, json={"query": query, "variables": variables or {}}) as response:
            if response.status != 200:
                return response.status, await response.text()
            return 200, await response.json()


async def shows_again(url: str, key: str, version_id: str, attempts: int = 480) -> list[int]:
    """Ask until the server shows the version again; returns the statuses seen on the way.

    The read models may step back a little after a crash (projections commit without waiting for the
    disk) and are applied again from the log, which does wait for it: the version comes back."""
    seen: list[int] = []
    for _ in range(attempts):
        try:
            status, body = await post(url, MODEL_QUERY, key=key)
        except aiohttp.ClientError:
            status, body = -1, ""
        if status == 200 and isinstance(body, dict) and (body.get("data") or {}).get("artifactVersion"):
            assert body["data"]["artifactVersion"] == {"id": version_id, "version": "v0"}
            return seen
        seen.append(status)
        await asyncio.sleep(0.25)
    raise AssertionError(f"the version never showed again; statuses seen: {sorted(set(seen))}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def log_a_version(url: str, key: str, content: bytes = b"weights") -> str:
    version = version_input("classifier", content)
    blob = url.removesuffix("/graphql") + f"/blobs/{version['files'][0]['digest']}"  # type: ignore[index]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.put(blob, data=content) as uploaded:  # a manifest names uploaded files only
            assert uploaded.status in (200, 201, 204), await uploaded.text()
    status, logged = await post(url, LOG_VERSION, {"input": version}, key=key)
    assert status == 200, logged
    return logged["data"]["logArtifactVersion"]["id"]  # type: ignore[index]


async def test_a_killed_embedded_postgres_is_started_again_and_nothing_is_lost(data_dir: Path) -> None:
    server = ServerProcess(data_dir, free_port())
    try:
        assert server.url is not None
        key = (data_dir / "admin-api-key").read_text().strip()
        version_id = await log_a_version(server.url, key)
        killed = postmaster_pid(data_dir / "postgres")
        assert killed is not None

        os.kill(killed, signal.SIGKILL)

        statuses = await shows_again(server.url, key, version_id)
        assert not [s for s in statuses if s >= 500 and s != 503], statuses  # away is 503, never 500
        assert server.process.poll() is None
        assert server.said("embedded PostgreSQL") and server.said("stopped unexpectedly: starting it again")
        assert postmaster_pid(data_dir / "postgres") not in (None, killed)
        assert await log_a_version(server.url, key, b"retrained") != version_id  # writes go through too
    finally:
        assert server.stop() == 0, "".join(server.lines)
    assert postgres_processes(data_dir / "postgres") == []


async def test_after_a_killed_server_the_next_one_still_stops_its_postgres(data_dir: Path) -> None:
    port = free_port()
    first = ServerProcess(data_dir, port)
    first.stop(signal.SIGKILL)  # PostgreSQL is left running, and the killed server's pid in its handle list
    assert postgres_processes(data_dir / "postgres") != []

    second = ServerProcess(data_dir, port)  # takes the running PostgreSQL over
    assert second.stop() == 0, "".join(second.lines)
    assert postgres_processes(data_dir / "postgres") == []


async def test_with_an_external_postgres_away_the_server_answers_503_and_recovers(data_dir: Path) -> None:
    dsn, external = start_embedded_postgres(data_dir / "external-postgres")  # stands for a team's PostgreSQL
    server = None
    try:
        server = ServerProcess(data_dir / "data", free_port(), "--database-url", dsn)
        assert server.url is not None
        key = (data_dir / "data" / "admin-api-key").read_text().strip()
        version_id = await log_a_version(server.url, key)

        external.stop()  # type: ignore[attr-defined]
        status, text = await post(server.url, MODEL_QUERY, key=key)
        assert status == 503 and "PostgreSQL" in str(text) and "retry" in str(text)
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url.replace("/graphql", "/healthz")) as health:
                assert health.status == 503
        assert server.process.poll() is None

        external.ensure_postgres_running()  # type: ignore[attr-defined]
        await shows_again(server.url, key, version_id)
        assert await log_a_version(server.url, key, b"retrained") != version_id
    finally:
        if server is not None:
            assert server.stop() == 0, "".join(server.lines)
        external.cleanup()  # type: ignore[attr-defined]
    assert postgres_processes(data_dir / "external-postgres") == []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
async def test_the_server_stops_the_postgres_it_started(data_dir: Path, how: signal.Signals) -> None:
    server = ServerProcess(data_dir, free_port())
    assert postgres_processes(data_dir / "postgres") != []
    assert server.stop(how) == 0, "".join(server.lines)
    assert postgres_processes(data_dir / "postgres") == []
