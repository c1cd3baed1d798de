"""A burst of events an automation fires on (120 datasets logged by one ingest job): the runner takes a few of one
automation's pending firings a pass (LaunchQueries.pending_firings), so each one closed must wake it for the next.
Before, the next pass came on the runner's one-second tick: five firings a second, whatever the machine could do
(real PostgreSQL; the log is in memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
from support.delivery import put

from modelreg.events.automations import AutomationCreated, AutomationFired, automation_stream
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.log import LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunFinished, RunStarted, run_stream
from modelreg.projections.launch_queries import PENDING_PER_AUTOMATION, LaunchQueries
from modelreg.projections.positions import reset
from modelreg.projections.runtime import ProjectionRunner
from modelreg.projections.triggers import TriggersProjection
from modelreg.services.automations.runner import FIRINGS_CHANNEL

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MO = Actor(kind="user", id="mo")
AUTOMATION = uuid4()


def at(seconds: int, payload: Event, stream: str) -> Envelope:
    return Envelope.new(payload, stream=stream, actor=MO, occurred_at=T0 + timedelta(seconds=seconds))


async def test_a_firing_closed_wakes_the_runner_for_the_next_of_its_automation(pool: asyncpg.Pool) -> None:
    projection = TriggersProjection()
    async with pool.acquire() as conn, conn.transaction():
        await reset(conn, projection.name, projection.tables)
        await conn.execute("DELETE FROM projection_positions WHERE projection = $1", projection.name)
    created = AutomationCreated.model_validate(
        {
            "automation_id": AUTOMATION,
            "name": "hook",
            "trigger": {"event": "run_finished"},
            "action": {"kind": "webhook", "url": "https://hooks.example.com/x"},
        }
    )
    history = [at(0, created, automation_stream(AUTOMATION))]
    for n in range(PENDING_PER_AUTOMATION + 1):
        of_run = {"entity": "acme", "project": "nature", "run_id": f"r{n}"}
        stream = run_stream("acme", "nature", f"r{n}")
        history += [at(n + 1, RunStarted(**of_run), stream), at(n + 1, RunFinished(**of_run, state="finished"), stream)]
    partitions: list[list[LogRecord]] = [[]]
    for event in history:
        put(partitions, 0, event)
    runner = ProjectionRunner(projection, InMemoryEventLog(topic="events"), pool)
    await runner.start_positions([0])
    await runner.apply_batch(partitions[0])

    window = await LaunchQueries(pool).pending_firings(200)
    assert len(window) == PENDING_PER_AUTOMATION  # the last run's firing waits behind them
    last = history[-1]
    assert last.id not in {f["event_id"] for f in window}

    woken = asyncio.Event()

    def wake(*_: object) -> None:
        woken.set()

    listener = await pool.acquire()
    await listener.add_listener(FIRINGS_CHANNEL, wake)
    try:
        oldest = window[0]
        closing = AutomationFired(
            automation_id=AUTOMATION,
            event_id=oldest["event_id"],
            event_type=oldest["event_type"],
            outcome="delivered",
            scope="entity:acme",
        )
        put(partitions, 0, at(60, closing, automation_stream(AUTOMATION)))
        await runner.apply_batch(partitions[0][-1:])
        await asyncio.wait_for(woken.wait(), 10)  # a wait, not a measure: NOTIFY comes at the commit
    finally:
        await listener.remove_listener(FIRINGS_CHANNEL, wake)
        await pool.release(listener)

    window = await LaunchQueries(pool).pending_firings(200)
    assert last.id in {f["event_id"] for f in window}
