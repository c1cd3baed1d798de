"""A projector that dies and is started again under the same name (`--instance-id`, Kafka's static
membership) takes its partitions back at once, instead of after the dead process's session times out. The
broker is real, and the dying process is really SIGKILLed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import uuid

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.kafka_log import KafkaEventLog
from modelreg.events.runs import RunStarted, run_stream

PARTITIONS = 3
EVENTS = 30
# A partition the dead process held comes back after this, or at once through the process's name.
SESSION_S = 120

MEMBER = textwrap.dedent(
    """
    import asyncio, sys
    from modelreg.events.kafka_log import KafkaEventLog

    async def from_zero(partitions):
        return dict.fromkeys(partitions, 0)

    async def main(servers, topic, instance, partitions, session_ms, events):
        log = KafkaEventLog(servers, topic, int(partitions), group_instance_id=instance or None,
                            session_timeout_ms=int(session_ms))
        subscription = await log.subscribe("static-membership", from_zero)
        read = 0
        while read < int(events):  # the group's only member: every partition is its own
            read += len(await subscription.next_batch(0.5, 100))
        print("read", flush=True)
        await asyncio.sleep(3600)  # until SIGKILL: no goodbye to the group

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def from_zero(partitions: list[int]) -> dict[int, int]:
    return dict.fromkeys(partitions, 0)


def runs(count: int) -> list[Envelope]:
    actor = Actor(kind="user", id="alice")
    return [
        Envelope.new(RunStarted(entity="acme", project="p", run_id=f"r{i}"), stream=run_stream("acme", "p", f"r{i}"),
                     actor=actor)
        for i in range(count)
    ]  # fmt: skip


def killed_after_reading(servers: str, topic: str, instance: str) -> None:
    member = subprocess.Popen(
        [sys.executable, "-c", MEMBER, servers, topic, instance, str(PARTITIONS), str(SESSION_S * 1000), str(EVENTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert member.stdout is not None
        line = member.stdout.readline()
        assert line.strip() == b"read", member.stderr.read() if member.stderr else b""
    finally:
        member.send_signal(signal.SIGKILL)
        member.wait()


async def test_a_projector_started_again_under_its_name_takes_its_partitions_back_at_once(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.{uuid.uuid4().hex[:12]}.events"
    log = KafkaEventLog(
        kafka_bootstrap,
        topic,
        PARTITIONS,
        group_instance_id="projector-1",
        session_timeout_ms=SESSION_S * 1000,
        create_topic=True,
    )
    await log.start()
    try:
        await log.append(runs(EVENTS))
        await asyncio.to_thread(killed_after_reading, kafka_bootstrap, topic, "projector-1")

        loop = asyncio.get_running_loop()
        started = loop.time()
        subscription = await log.subscribe("static-membership", from_zero)
        read: list[int] = []
        try:
            # getmany waits for the group to assign partitions regardless of its own timeout: bounded here.
            while len(read) < EVENTS and loop.time() - started < 2 * SESSION_S:
                read += [r.position.offset for r in await subscription.next_batch(0.5, 100)]
        finally:
            await subscription.close()
        assert len(read) == EVENTS
        # Under another name (or none), the partitions would come back only once the dead session ended.
        assert loop.time() - started < SESSION_S / 2
    finally:
        await log.close()


async def test_a_subscription_cancelled_while_joining_leaves_no_member_behind_under_its_name(
    kafka_bootstrap: str,
) -> None:
    """A projector whose name is lost while it joins stops; a consumer left running would go on heartbeating
    under the name beside the one that replaces it."""
    topic = f"test.{uuid.uuid4().hex[:12]}.events"
    log = KafkaEventLog(kafka_bootstrap, topic, PARTITIONS, group_instance_id="projector-1", create_topic=True)
    await log.start()
    try:
        before = set(asyncio.all_tasks())
        # A group of its own: the other story's member, gone without a goodbye, would hold this join for its session.
        joining = asyncio.create_task(log.subscribe(f"static-membership-{uuid.uuid4().hex[:8]}", from_zero))
        while not _group_tasks(before):  # start() has begun to coordinate with the group
            await asyncio.sleep(0.01)
        joining.cancel()
        try:
            await joining
        except asyncio.CancelledError:
            pass
        else:  # it finished joining before the cancellation arrived: not what this test is about
            await joining.result().close()
        await asyncio.sleep(0.1)
        assert _group_tasks(before) == []
    finally:
        await log.close()


def _group_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """The subscription's own coordination tasks (the log's metadata consumer has some of its own)."""
    return [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and "coordinat" in t.get_coro().__qualname__.lower()  # type: ignore[union-attr]
    ]
