"""Replays of the log's past (a subscription from the beginning, or after an old cursor) take turns: however many
a caller opens, the API's event loop serves everyone else between a couple of decoded batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunStarted, run_stream
from modelreg.events.tail import MAX_CATCHING_UP, LogTails


class CountedTails(LogTails):
    decoded_batches = 0

    @staticmethod
    def _kept(*args, **kwargs):  # type: ignore[no-untyped-def]
        CountedTails.decoded_batches += 1
        return LogTails._kept(*args, **kwargs)


async def test_replays_of_a_long_log_leave_the_event_loop_to_others_between_batches() -> None:
    log = InMemoryEventLog(partitions=1)
    mo = Actor(kind="user", id="mo")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    await log.append(
        [
            Envelope.new(
                RunStarted(entity="acme", project="p", run_id=f"r{i}"),
                stream=run_stream("acme", "p", f"r{i}"),
                actor=mo,
                occurred_at=at,
            )
            for i in range(3000)
        ]
    )
    tails = CountedTails(batch_size=100)
    most_between_turns = 0

    async def replay() -> int:
        seen = 0
        async for _ in tails.follow(log, from_now=False):
            seen += 1
            if seen == 3000:
                return seen
        return seen

    async def another_request() -> None:  # /healthz, a query: each turn it gets
        nonlocal most_between_turns
        last = CountedTails.decoded_batches
        while True:
            await asyncio.sleep(0)
            most_between_turns = max(most_between_turns, CountedTails.decoded_batches - last)
            last = CountedTails.decoded_batches

    other = asyncio.create_task(another_request())
    assert await asyncio.gather(*(replay() for _ in range(6))) == [3000] * 6
    other.cancel()
    assert CountedTails.decoded_batches >= 6 * 30
    assert most_between_turns <= 2 * MAX_CATCHING_UP
