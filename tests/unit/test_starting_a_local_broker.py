"""How `modelreg server --local-kafka` starts its broker, on a stand-in for Java that behaves as Kafka does at the
moments that matter: it says "Kafka Server started" and listens, or ends at once, or says nothing yet.

The broker's log is appended to at every start, and a broker left over from a killed server answers on the port:
the server said it was ready on the strength of both while its own broker was still starting (then one of the two
corrupted the folder's metadata log), or had already ended (address in use), unnoticed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg.services.infra.local_kafka import LocalKafka
from modelreg.services.infra.local_kafka.broker import LocalKafkaError, written_since

READY = "[2026-12-07 12:20:30,000] INFO [KafkaRaftServer nodeId=1] Kafka Server started (kafka.server.KafkaRaftServer)"

# Its way of behaving from $FAKE_KAFKA: "serves" (ready, listening until SIGTERM), "ends" (a bind failure), "silent".
FAKE_JAVA = f"""#!{sys.executable} -S
import os, re, signal, socket, sys, time
if "kafka.tools.StorageTool" in sys.argv:
    sys.exit(0)
config = open(sys.argv[-1]).read()
port = int(re.search(r"PLAINTEXT://127.0.0.1:(\\d+)", config).group(1))
how = os.environ["FAKE_KAFKA"]
if how == "ends":
    print(f"ERROR Socket server failed to bind to 127.0.0.1:{{port}}: Address already in use.", flush=True)
    sys.exit(1)
if how == "serves":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    print({READY!r}, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(60)
"""


@pytest.fixture
def fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(FAKE_JAVA)
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return java


@pytest.fixture
def jars(tmp_path: Path) -> Path:
    """A jar cache as complete as the stand-in needs."""
    cache = tmp_path / "cache"
    (cache / "libs").mkdir(parents=True)
    (cache / ".complete").write_text("fake")
    return cache


@pytest.fixture
def broker(tmp_path: Path, fake_java: Path, jars: Path) -> Iterator[LocalKafka]:
    kafka = LocalKafka(tmp_path / "kafka", cache_dir=jars)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def port_answering(broker: LocalKafka) -> Iterator[None]:
    """The broker's port taken and answering, as a broker left over from a killed server does."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", broker.port))
        holder.listen()
        yield


def an_earlier_start_was_ready(broker: LocalKafka) -> None:
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    broker.log_file.write_text(f"{READY}\n")


def test_only_what_a_start_wrote_to_the_log_counts_for_it(tmp_path: Path) -> None:
    log_file = tmp_path / "kafka.log"
    log_file.write_text(f"{READY}\nINFO shutting down\n")
    launched_at = log_file.stat().st_size
    assert written_since(log_file, launched_at) == ""
    with log_file.open("a") as log:
        log.write("INFO starting\n")
    assert "Kafka Server started" not in written_since(log_file, launched_at)
    with log_file.open("a") as log:
        log.write(f"{READY}\n")
    assert written_since(log_file, launched_at) == f"INFO starting\n{READY}\n"
    assert written_since(tmp_path / "never-written.log", 0) == ""


def test_an_earlier_start_s_ready_line_is_not_taken_for_this_one(
    broker: LocalKafka, port_answering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    an_earlier_start_was_ready(broker)
    monkeypatch.setenv("FAKE_KAFKA", "silent")  # still starting
    with pytest.raises(LocalKafkaError, match="did not start within"):
        broker.start(timeout_s=0.5)


def test_a_broker_that_ends_before_it_is_ready_is_said_with_the_end_of_its_log(
    broker: LocalKafka, port_answering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    an_earlier_start_was_ready(broker)
    monkeypatch.setenv("FAKE_KAFKA", "ends")
    with pytest.raises(LocalKafkaError, match="exited with 1 before it was ready") as failed:
        broker.start()
    assert "Address already in use" in str(failed.value)
    assert "Kafka Server started" not in str(failed.value)  # the earlier start's lines are not this one's


def test_a_broker_left_running_on_the_folder_is_stopped_before_another_starts(
    tmp_path: Path,
    broker: LocalKafka,
    fake_java: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a broker of a killed server, started before brokers ended with their server; a broker of another folder
    (or a process that took a dead broker's pid) is not ours to stop."""
    monkeypatch.setenv("FAKE_KAFKA", "serves")
    broker.start()  # writes the folder's configuration
    config = broker.data_dir / "server.properties"
    broker.stop()
    other_config = tmp_path / "elsewhere" / "server.properties"
    other_config.parent.mkdir()
    other_config.write_text("listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2\n")
    monkeypatch.setenv("FAKE_KAFKA", "silent")
    elsewhere = subprocess.Popen([str(fake_java), "-cp", "libs/*", "kafka.Kafka", str(other_config)])
    monkeypatch.setenv("FAKE_KAFKA", "serves")
    left_over = subprocess.Popen([str(fake_java), "-cp", "libs/*", "kafka.Kafka", str(config)])
    try:
        with caplog.at_level(logging.WARNING):
            broker.start()
        assert left_over.wait(30) == 0  # it was asked to stop (SIGTERM), and did
        assert f"a Kafka broker of an earlier start (pid {left_over.pid}) still runs in" in caplog.text
        assert elsewhere.poll() is None
    finally:
        for process in (left_over, elsewhere):
            process.send_signal(signal.SIGKILL)
            process.wait()


def test_a_folder_whose_broker_another_process_runs_is_refused(
    broker: LocalKafka, jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KAFKA", "serves")
    broker.start()
    second = LocalKafka(broker.data_dir, cache_dir=jars)
    with pytest.raises(LocalKafkaError, match="another process runs Kafka in"):
        second.start()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
        pass  # the first one's broker is left alone
