"""Fetch Kafka's jars once with Maven, format KRaft storage, start one combined broker+controller, stop it.

The jars are cached per Kafka version (by default under the user's cache folder), so only the first start
on a machine needs Maven Central. The broker's ports are chosen once per data folder and kept, since a
KRaft voter's controller address is written into its metadata at format time.

One broker per data folder, ever: two on one folder corrupt its metadata log. The process that starts it holds a
lock on the folder until it stops it (the kernel lets go of it when that process dies, killed or not); the broker
is sent SIGTERM when that process dies, and a broker of the folder still running at a start (it did not stop in
time, or was started by a version without that signal) is stopped first.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
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
import psutil

from modelreg.services.parent_death_signal import signal_at_parent_death

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
_READY_LINE = "Kafka Server started"
_LAST_LINES = 20  # of its log, said when the broker ends before it is ready


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


def written_since(log_file: Path, offset: int) -> str:
    """What was appended to `log_file` from `offset` on: the log of every start of the folder's broker is kept in
    one file, and a ready line of an earlier start says nothing of this one."""
    try:
        with log_file.open("rb") as log_text:
            log_text.seek(offset)
            return log_text.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def brokers_on(config: Path) -> list[psutil.Process]:
    """The running Kafka brokers started with this configuration file, hence on its data folder."""
    found = []
    for process in psutil.process_iter(attrs=("cmdline", "status")):
        cmdline = process.info["cmdline"] or ()
        if "kafka.Kafka" in cmdline and str(config) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def _ends_with_its_starter() -> None:
    """In the broker's process, before Java starts: SIGTERM, not SIGKILL, so that it closes its logs on the way."""
    signal_at_parent_death(signal.SIGTERM)


class LocalKafka:
    def __init__(self, data_dir: Path, *, cache_dir: Path | None = None, heap: str = "768m") -> None:
        self.data_dir = Path(data_dir).resolve()  # as its brokers' command lines name it, wherever they started
        self.cache_dir = cache_dir or default_cache_dir()
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self._folder_lock: int | None = None  # a file descriptor, held while this object runs the folder's broker
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_folder()
        try:
            self._launch(libs, self._write_config(), timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _lock_folder(self) -> None:
        if self._folder_lock is not None:
            return
        fd = os.open(self.data_dir / "kafka.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LocalKafkaError(
                f"another process runs Kafka in {self.data_dir} (one broker a folder: two corrupt its logs)"
            ) from None
        self._folder_lock = fd

    def _unlock_folder(self) -> None:
        fd, self._folder_lock = self._folder_lock, None
        if fd is not None:
            os.close(fd)  # and with it the lock

    def _stop_leftovers(self, config: Path, timeout_s: float = 30.0) -> None:
        """No live process holds the folder (this one has its lock): a broker still on it is left over."""
        leftovers = brokers_on(config)
        for broker in leftovers:
            log.warning(
                "a Kafka broker of an earlier start (pid %s) still runs in %s: stopping it first",
                broker.pid,
                self.data_dir,
            )
            with contextlib.suppress(psutil.NoSuchProcess):
                broker.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=timeout_s)
        for broker in alive:
            log.warning("the Kafka broker %s did not stop within %.0f s: killing it", broker.pid, timeout_s)
            with contextlib.suppress(psutil.NoSuchProcess):
                broker.kill()
        psutil.wait_procs(alive, timeout=timeout_s)

    def _launch(self, libs: Path, config: Path, timeout_s: float) -> None:
        self._stop_leftovers(config)
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
        with self.log_file.open("ab") as logfile:
            launched_at = logfile.tell()
            self._process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(config)),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the broker cleanly
                preexec_fn=_ends_with_its_starter,
            )
        (self.data_dir / "kafka.pid").write_text(str(self._process.pid))
        self._wait_ready(self._process, launched_at, timeout_s)

    def _wait_ready(self, process: subprocess.Popen[bytes], launched_at: int, timeout_s: float) -> None:
        """Until this start's broker says it is ready and takes connections: another process may answer on the
        port meanwhile (a broker left over, stopping), and it is said when the broker ends instead."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            said = written_since(self.log_file, launched_at)
            if process.poll() is not None:
                last_lines = "\n".join(said.splitlines()[-_LAST_LINES:])
                raise LocalKafkaError(
                    f"Kafka exited with {process.returncode} before it was ready; the end of {self.log_file}:\n"
                    f"{last_lines}"
                )
            if _READY_LINE in said and self._accepts_connections():
                return
            time.sleep(0.2)
        raise LocalKafkaError(f"Kafka did not start within {timeout_s}s; see {self.log_file}")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        process, self._process = self._process, None
        try:
            if process is None or process.poll() is not None:
                return
            process.send_signal(signal.SIGTERM)  # Kafka's shutdown hook flushes and closes its logs
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            self._unlock_folder()  # only once the broker is gone

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
