"""A Kafka broker killed (its port refuses connections) or hung (SIGSTOP: connections open, no answer) under a
running installation, on a broker of the test's own. A mutation meanwhile is answered UNAVAILABLE within seconds (it
hung without an answer, and was applied minutes later): once the broker is known to be away, refused before anything
of it is sent, and never written; one already handed to the producer is written whole, in order, when the broker
answers. The outage is said once each way, not in thousands of aiokafka's lines; a triggers process told to stop
stops."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from support.log_contents import all_records
from support.stack import Stack

from modelreg.errors import Unavailable
from modelreg.events.codec import decode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.kafka_log import KafkaEventLog
from modelreg.events.log import EventLogNotAnswering
from modelreg.events.runs import RunStarted
from modelreg.services.infra.local_kafka import LocalKafka
from modelreg.services.settings import Settings

CREATE_QUEUE = "mutation($n: String!) { createLaunchQueue(input: {name: $n}) { name } }"
QUEUES = "{ launchQueues { items { name } } }"


class OwnBroker:
    """A single-node broker this module may kill, hang and start again (on the same port: its data folder keeps it)."""

    def __init__(self, folder: Path) -> None:
        self.kafka = LocalKafka(folder)

    @property
    def address(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def pid(self) -> int:
        assert self.kafka._process is not None
        return self.kafka._process.pid

    def running(self) -> OwnBroker:
        if self.kafka._process is None:
            self.kafka.start()
        return self

    def kill(self) -> None:
        process, self.kafka._process = self.kafka._process, None
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path_factory.mktemp("own-kafka"))
    try:
        yield broker
    finally:
        if broker.kafka._process is not None:
            os.kill(broker.pid, signal.SIGCONT)  # a test that failed while it hung
        broker.kafka.stop()


@pytest.fixture
async def broker(own_broker: OwnBroker) -> OwnBroker:
    """The broker, running and answering: just started, or woken from SIGSTOP, it answers metadata without itself
    for a moment."""
    await asyncio.to_thread(own_broker.running)
    async with asyncio.timeout(60):
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=own_broker.address)
            try:
                await admin.start()
                await admin.list_topics()
                return own_broker
            except KafkaError:
                await asyncio.sleep(0.5)
            finally:
                await admin.close()


def started_run(n: int) -> Envelope:
    payload = RunStarted(entity="acme", project="outage", run_id=f"r{n}")
    return Envelope.new(payload, stream=f"run:acme/outage/r{n}", actor=Actor(kind="service", id="tests"))


async def answered(stack: Stack, name: str) -> tuple[float, dict]:
    began = time.monotonic()
    async with asyncio.timeout(60):  # it hung without an answer: the test fails rather than waits for ever
        answer = await stack.graphql(CREATE_QUEUE, {"n": name})
    return time.monotonic() - began, answer


async def test_a_mutation_while_the_broker_is_down_is_refused_within_seconds_and_not_applied_later(
    broker: OwnBroker, database_url: str, topic: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.address,
        topic=topic,
        missing_topic="create",
        partitions=3,
        blob_dir=tmp_path / "blobs",
        webhook_secret_key="tests-webhook-key",
    )
    # Bounded: a server holding an append stopped only once the broker took it.
    async with asyncio.timeout(600), Stack(settings) as stack:
        assert (await stack.graphql(CREATE_QUEUE, {"n": "q-before"}))["data"]
        broker.kill()

        # The first, handed to the producer before the broker was known to be away, may be written when it is back.
        may_be_recorded: list[str] = []
        for n in range(20):
            took, refused = await answered(stack, f"q-maybe-{n}")
            assert took < 10, f"answered after {took:.1f} s"
            [error] = refused["errors"]
            assert error["extensions"] == {"code": "UNAVAILABLE", "retriable": True}, error
            if "nothing was recorded" in error["message"]:
                break
            assert "may or may not be recorded" in error["message"] and "commandId" in error["message"], error
            may_be_recorded.append(f"q-maybe-{n}")
        else:
            raise AssertionError("the broker away, no mutation was refused before it was sent")
        refused_up_front = f"q-maybe-{n}"
        assert took < 1, f"refused up front after {took:.1f} s"

        broker.running()
        # The broker starts and elects its partitions' leaders again (a minute on a busy machine): refused meanwhile,
        # at once while the broker is taken for away, so sent again every half second.
        for _ in range(240):
            took, after = await answered(stack, "q-after")
            if "errors" not in after:
                break
            assert after["errors"][0]["extensions"]["retriable"], after
            await asyncio.sleep(0.5)
        assert after["data"]["createLaunchQueue"] == {"name": "q-after"}, after
        shown = {q["name"] for q in (await stack.graphql(QUEUES))["data"]["launchQueues"]["items"]}
        assert {"q-after", "q-before"} <= shown and refused_up_front not in shown, shown
        assert shown <= {"q-after", "q-before", *may_be_recorded}, shown
    log = KafkaEventLog(broker.address, topic)
    await log.start()
    try:
        created = [r.value for r in await all_records(log) if r.value and refused_up_front.encode() + b'"' in r.value]
    finally:
        await log.close()
    assert created == []  # not on the log either, where a projection applies it whenever it is read


async def test_a_hung_broker_is_answered_for_within_seconds_and_what_it_was_handed_is_written_whole_when_it_wakes(
    broker: OwnBroker, topic: str
) -> None:
    """A command's events over several partitions (the batched path), and another command's beside them, handed to
    the producer as the broker hangs: both are answered UNAVAILABLE within seconds, and written whole, in order, when
    it wakes. Failed where they had not gone yet, a retry found the command's first event and answered it accepted:
    the rest never recorded. The next append, the broker known away, is refused before anything is sent."""
    log = KafkaEventLog(broker.address, topic, 3, create_topic=True)
    await log.start()
    try:
        await log.append([started_run(0)])
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            one_command = [started_run(n) for n in range(1, 41)]
            began = time.monotonic()
            async with asyncio.timeout(60):  # aiokafka waited for ever for an append
                held = await asyncio.gather(
                    log.append(one_command), log.append([started_run(100)]), return_exceptions=True
                )
            assert time.monotonic() - began < 10
            for refused in held:
                assert isinstance(refused, EventLogNotAnswering), refused
                assert refused.retriable and "may or may not be recorded" in refused.message
                assert refused.still_held is not None

            began = time.monotonic()
            with pytest.raises(EventLogNotAnswering, match="nothing was recorded"):
                await log.append([started_run(200)])
            assert time.monotonic() - began < 1
            with pytest.raises(Unavailable, match="nothing was changed"):
                async with asyncio.timeout(60):  # aiokafka waited 40 s for a read
                    await log.end_positions()
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        async with asyncio.timeout(120):
            written = [await refused.still_held for refused in held if isinstance(refused, EventLogNotAnswering)]
        assert [len(positions) for positions in written] == [40, 1]  # type: ignore[arg-type]
        on_the_log = [r for r in await all_records(log) if r.value]
    finally:
        async with asyncio.timeout(30):
            await log.close()
    streams = {(r.position.partition, r.position.offset): decode(r.value).stream for r in on_the_log if r.value}
    assert sorted(streams.values()) == sorted(e.stream for e in [started_run(0), *one_command, started_run(100)])
    for partition in {p for p, _ in streams}:  # each partition's share of the command, in the order it was sent
        runs = [int(streams[p, o].rsplit("/r", 1)[1]) for p, o in sorted(streams) if p == partition]
        assert [n for n in runs if n < 100] == sorted(n for n in runs if n < 100), runs


# Slow (bench/slow_tests.sh runs it): it waits out aiokafka's minute of lines / a process's stop during an outage.
@pytest.mark.slow
async def test_an_outage_is_said_once_each_way_and_aiokafkas_lines_once_a_minute(
    broker: OwnBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log = KafkaEventLog(broker.address, topic, 3, create_topic=True)
    await log.start()

    async def nothing_yet(partitions: list[int]) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    reading = await log.subscribe("outage-reader", nothing_yet)  # a projector's consumer: its group, its fetches
    try:
        await log.append([started_run(0)])
        caplog.clear()
        broker.kill()
        ends = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < ends:
            await reading.next_batch(0.5, 100)
            with pytest.raises(Unavailable):
                async with asyncio.timeout(30):  # it waited for ever
                    await log.append([started_run(1)])
        lines = [r for r in caplog.records if r.name.startswith("aiokafka")]
        unreachable = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]

        assert 0 < len(lines) <= 30, [r.getMessage() for r in lines]  # a kind each, not one per attempt
        assert all(broker.address in r.getMessage() for r in lines), [r.getMessage() for r in lines]  # never "node 1"
        assert len(unreachable) == 1 and f"Kafka at {broker.address} is unreachable" in unreachable[0], unreachable

        broker.running()
        async with asyncio.timeout(120):
            while not [r for r in caplog.records if "answers again, after" in r.getMessage()]:
                await asyncio.sleep(0.5)
        back = [r.getMessage() for r in caplog.records if "answers again, after" in r.getMessage()]
        assert len(back) == 1 and f"Kafka at {broker.address} answers again" in back[0], back
    finally:
        async with asyncio.timeout(60):  # a producer holding an append stopped only once the broker took it
            await reading.close()
            await log.close()


class Started:
    """`modelreg COMMAND` on the test's broker and database, its output in a file."""

    def __init__(self, command: str, broker: OwnBroker, database_url: str, topic: str, folder: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.address,
            "MODELREG_TOPIC": topic,
            "MODELREG_WEBHOOK_SECRET_KEY": "tests-webhook-key",
        }
        self.said = folder / f"{command}.log"
        with self.said.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modelreg.services.cli", command], stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def output(self) -> str:
        return self.said.read_text()

    async def saying(self, text: str, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            while text not in self.output():
                assert self.process.poll() is None, self.output()
                await asyncio.sleep(0.2)

    async def stopped(self) -> tuple[int, float]:
        """SIGTERM: its exit code, and how long it took."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 120)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def a_topic(broker: OwnBroker) -> str:
    topic = f"test.{os.urandom(6).hex()}.events"
    log = KafkaEventLog(broker.address, topic, 3, create_topic=True)
    await log.start()
    await log.close()
    return topic


# Slow (bench/slow_tests.sh runs it): it waits out aiokafka's minute of lines / a process's stop during an outage.
@pytest.mark.slow
async def test_a_triggers_process_stopped_while_the_broker_is_down_stops_within_seconds(
    broker: OwnBroker, database_url: str, tmp_path: Path
) -> None:
    triggers = Started("triggers", broker, database_url, await a_topic(broker), tmp_path)
    try:
        await triggers.saying("carrying out automations", within_s=120)
        broker.kill()
        await triggers.saying("automation runner:", within_s=90)  # its passes ask where the log ends: one is refused
        await asyncio.sleep(3)  # in its next pass, asking again (aiokafka asked for 40 s)

        code, took = await triggers.stopped()

        assert (code, took < 15) == (0, True), (took, triggers.output())
        runner_said = [line for line in triggers.output().splitlines() if "automation runner:" in line]
        assert runner_said and not [line for line in runner_said if "send it again" in line], runner_said
        assert "wait until it answers" in runner_said[0], runner_said
    finally:
        triggers.kill()


# Slow (bench/slow_tests.sh runs it): it waits out aiokafka's minute of lines / a process's stop during an outage.
@pytest.mark.slow
async def test_a_projector_stopped_while_the_broker_is_down_stops_cleanly(
    broker: OwnBroker, database_url: str, tmp_path: Path
) -> None:
    projector = Started("projector", broker, database_url, await a_topic(broker), tmp_path)
    try:
        await projector.saying("projector: running", within_s=120)
        await asyncio.sleep(5)  # its consumer has its partitions, and fetches
        broker.kill()
        await asyncio.sleep(8)  # its fetches fail, and back off

        code, took = await projector.stopped()

        # aiokafka's fetcher, closing, awaited a fetch it had cancelled: exit 1, a CancelledError's traceback.
        assert (code, took < 15, "Traceback" in projector.output()) == (0, True, False), (took, projector.output())
    finally:
        projector.kill()
