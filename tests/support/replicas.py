"""Several `modelreg api` and `modelreg projector` processes on one Kafka, one PostgreSQL and one object store,
and a client that spreads work over the APIs while some of them are killed. Used by
tests/e2e/test_several_processes.py and bench/scale.py."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from uuid_utils.compat import uuid7

from modelreg.errors import ModelregError
from modelreg.transport import Transport, with_command_id

LOG_VERSION = (
    "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id digest files { path digest } } }"
)
VERSIONS = (
    "query($e: String!, $p: String!, $n: String!) "
    "{ artifactVersions(entity: $e, project: $p, name: $n) { items { id files { path size digest } } } }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelregProcess:
    """One `modelreg <command>` subprocess, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path, port: int | None = None) -> None:
        self.name, self.args, self.env, self.port = name, args, env, port
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModelregProcess:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modelreg.services.cli", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def wait_ready(self, timeout_s: float = 120) -> None:
        self._until_answered(urllib.request.Request(f"{self.url}/readyz"), timeout_s, "was not ready")

    def wait_until_key_works(self, key: str, timeout_s: float = 60) -> None:
        """The first API appends the admin key before a projector runs (they start after it): the key works
        once a projector has applied it, which a caller must not race (a websocket was once refused with it)."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=b'{"query": "{ __typename }"}',
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self._until_answered(request, timeout_s, "did not accept the admin key")

    def _until_answered(self, request: urllib.request.Request, timeout_s: float, failure: str) -> None:
        """Until `request` answers 200 (any error, a 401 or 503 as well, is tried again), while the process runs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} {failure} in {timeout_s} s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def cpu_seconds(self) -> float:
        """User + system CPU this process has used so far (Linux /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Installation:
    """APIs and projectors sharing the log, the database and the bucket."""

    database_url: str
    kafka: str
    topic: str
    blob_store: str
    logs: Path
    apis: list[ModelregProcess] = field(default_factory=list)
    projectors: list[ModelregProcess] = field(default_factory=list)
    admin_key: str = ""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MODELREG_API_KEY", "MODELREG_URL")}
        env.update(
            DATABASE_URL=self.database_url,
            KAFKA_BOOTSTRAP_SERVERS=self.kafka,
            MODELREG_TOPIC=self.topic,
            MODELREG_BLOB_STORE=self.blob_store,
        )
        return env

    def start(self, apis: int = 2, projectors: int = 2) -> Installation:
        key_file = self.logs / "admin-api-key"
        for i in range(apis):
            port = free_port()
            args = ["api", "--port", str(port), "--admin-key-file", str(key_file)]
            self.apis.append(ModelregProcess(f"api-{i}", args, self.env(), self.logs, port))
        for i in range(projectors):
            self.projectors.append(ModelregProcess(f"projector-{i}", ["projector"], self.env(), self.logs))
        self.apis[0].start().wait_ready()  # the first one migrates the database and issues the admin key
        for process in [*self.apis[1:], *self.projectors]:
            process.start()
        for api in self.apis[1:]:
            api.wait_ready()
        deadline = time.monotonic() + 60
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.admin_key = key_file.read_text().strip()
        for api in self.apis:
            api.wait_until_key_works(self.admin_key)
        return self

    def stop(self) -> None:
        for process in [*self.apis, *self.projectors]:
            process.stop()


@dataclass
class Acknowledged:
    name: str
    version_id: str
    digest: str


def log_one(transport: Transport, folder: Path, name: str, content: bytes) -> Acknowledged:
    """Upload one file (through presigned URLs) and log a version naming it: acknowledged once both answered."""
    path = folder / f"{name}.bin"
    path.write_bytes(content)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    transport.upload(path, digest, lambda n: None)
    files = [{"path": "weights.bin", "size": len(content), "digest": digest}]
    fields = {"entity": "acme", "project": "scale", "name": name, "type": "model", "files": files}
    # As the client sends it: with a command id and a version id, so that the transport may send it again
    # after a lost answer (an API killed mid-request) and the server still logs one version.
    fields = with_command_id({**fields, "id": str(uuid7())})
    logged = transport.graphql(LOG_VERSION, {"i": fields})["logArtifactVersion"]
    return Acknowledged(name, logged["id"], digest)


def spread_work(
    installation: Installation,
    folder: Path,
    actions: int,
    content_size: int = 64 * 1024,
    stop: threading.Event | None = None,
) -> tuple[list[Acknowledged], int]:
    """Log `actions` versions, turn by turn on each API; returns what was acknowledged and how many failed."""
    transports = [Transport(api.url, installation.admin_key, timeout_s=30) for api in installation.apis]
    acked, failed = [], 0
    try:
        for i in range(actions):
            if stop is not None and stop.is_set():
                break
            content = hashlib.sha256(f"{folder}{i}".encode()).digest() * (content_size // 32)
            try:
                acked.append(log_one(transports[i % len(transports)], folder, f"model-{i}", content))
            except (ModelregError, OSError, Exception):  # noqa: BLE001 -- unacknowledged: allowed to be lost
                failed += 1
    finally:
        for transport in transports:
            transport.close()
    return acked, failed


def lost_or_doubled(installation: Installation, acked: list[Acknowledged], folder: Path) -> list[str]:
    """What is wrong with the acknowledged actions: missing, present more than once, or a file that does not
    download and verify (from every API)."""
    problems = []
    transports = [Transport(api.url, installation.admin_key, timeout_s=30) for api in installation.apis]
    try:
        for n, ack in enumerate(acked):
            transport = transports[n % len(transports)]
            page = transport.graphql(VERSIONS, {"e": "acme", "p": "scale", "n": ack.name})["artifactVersions"]
            ids = [v["id"] for v in page["items"]]
            if ids != [ack.version_id]:
                problems.append(f"{ack.name}: versions {ids}, acknowledged {ack.version_id}")
                continue
            try:
                transport.download(ack.digest, folder / "downloads" / ack.name, lambda n: None)
            except Exception as exc:  # noqa: BLE001 -- reported
                problems.append(f"{ack.name}: its file did not download and verify: {exc}")
    finally:
        for transport in transports:
            transport.close()
    return problems
