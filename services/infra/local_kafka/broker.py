"""Fetch Kafka's jars once with Maven, format KRaft storage, start one combined broker+controller, stop it.

The jars are cached per Kafka version (by default under the user's cache folder), so only the first start
on a machine needs Maven Central. The broker's ports are chosen once per data folder and kept, since a
KRaft voter's controller address is written into its metadata at format time.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
_READY_LINE = "Kafka Server started"


class LocalKafkaError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    return (
        Path(os.environ.get("MODELREG_KAFKA_CACHE", platformdirs.user_cache_dir("modelreg"))) / f"kafka-{KAFKA_VERSION}"
    )


def fetch_kafka_jars(cache_dir: Path | None = None) -> Path:
    """Resolve Kafka and its runtime dependencies from Maven Central into `<cache>/libs` (once)."""
    cache_dir = cache_dir or default_cache_dir()
    libs = cache_dir / "libs"
    done = cache_dir / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven (mvn) is not on PATH: install it (apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    package = resources.files("modelreg.services.infra.local_kafka")
    (cache_dir / "pom.xml").write_text(package.joinpath("pom.xml").read_text())
    (cache_dir / "log4j2.properties").write_text(package.joinpath("log4j2.properties").read_text())
    shutil.rmtree(libs, ignore_errors=True)
    log.info("fetching Apache Kafka %s jars with Maven into %s (once)", KAFKA_VERSION, libs)
    result = subprocess.run(
        [mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        cwd=cache_dir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Maven could not fetch Kafka {KAFKA_VERSION} (is Maven Central reachable?):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    done.write_text(KAFKA_VERSION)
    return libs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalKafka:
    def __init__(self, data_dir: Path, *, cache_dir: Path | None = None, heap: str = "768m") -> None:
        self.data_dir = Path(data_dir)
        self.cache_dir = cache_dir or default_cache_dir()
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self.port, self.controller_port = self._ports()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    def _ports(self) -> tuple[int, int]:
        ports_file = self.data_dir / "ports.json"
        if ports_file.exists():
            ports = json.loads(ports_file.read_text())
            return ports["broker"], ports["controller"]
        return _free_port(), _free_port()

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "ports.json").write_text(json.dumps({"broker": self.port, "controller": self.controller_port}))
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"log.dirs={self.data_dir / 'logs'}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )
        return config

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise LocalKafkaError("Java is not on PATH: install a JRE 17+ (apt-get install openjdk-17-jre-headless)")
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.cache_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, timeout_s: float = 120.0) -> LocalKafka:
        libs = fetch_kafka_jars(self.cache_dir)
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            # One id in 64 starts with "-", which the tool's argument parser takes for an option: hence "--cluster-id=".
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise LocalKafkaError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        logfile = self.log_file.open("ab")
        self._process = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(config)),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the broker cleanly
        )
        (self.data_dir / "kafka.pid").write_text(str(self._process.pid))
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        start_offset = 0
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise LocalKafkaError(f"Kafka exited with {self._process.returncode}; see {self.log_file}")
            text = self.log_file.read_text(errors="replace")
            if _READY_LINE in text[start_offset:] and self._accepts_connections():
                return
            time.sleep(0.2)
        self.stop()
        raise LocalKafkaError(f"Kafka did not start within {timeout_s}s; see {self.log_file}")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # Kafka's shutdown hook flushes and closes its logs
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
