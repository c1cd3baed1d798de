"""An automation switched off then on again, replayed from several partitions: the trigger projection may read an
event of the time it was off before the switch off itself (another partition). Live, that event fired nothing; the
replay must not make it fire now (real PostgreSQL; the log is in memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
from support.delivery import put

from modelreg.events.automations import (
    AutomationCreated,
    AutomationDisabled,
    AutomationEnabled,
    AutomationFired,
    automation_stream,
)
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.log import LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunFinished, RunStarted, run_stream
from modelreg.projections.positions import reset
from modelreg.projections.runtime import ProjectionRunner
from modelreg.projections.triggers import TriggersProjection, was_on_at

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MO = Actor(kind="user", id="mo")
AUTOMATION = uuid4()
HOOK = {"kind": "webhook", "url": "https://hooks.example.com/x"}


def at(minutes: int, payload: Event, stream: str) -> Envelope:
    return Envelope.new(payload, stream=stream, actor=MO, occurred_at=T0 + timedelta(minutes=minutes))


def finished(minutes: int, run: str) -> list[Envelope]:
    stream = run_stream("acme", "nature", run)
    of_run = {"entity": "acme", "project": "nature", "run_id": run}
    return [at(minutes, RunStarted(**of_run), stream), at(minutes, RunFinished(**of_run, state="finished"), stream)]


def fired(minutes: int, event: Envelope) -> Envelope:
    payload = AutomationFired(
        automation_id=AUTOMATION, event_id=event.id, event_type=event.type, outcome="delivered", scope="entity:acme"
    )
    return at(minutes, payload, automation_stream(AUTOMATION))


def history() -> tuple[list[Envelope], list[Envelope], dict[str, Envelope]]:
    """The automation's stream (one partition) and the runs' (another): r1 finished while it was on, r2 while
    it was off, r3 once it was on again. Live, r1 and r3 fired it."""
    own = automation_stream(AUTOMATION)
    r1, r2, r3 = finished(1, "r1"), finished(3, "r2"), finished(5, "r3")
    created = AutomationCreated.model_validate(
        {"automation_id": AUTOMATION, "name": "hook", "trigger": {"event": "run_finished"}, "action": HOOK}
    )
    automation = [
        at(0, created, own),
        fired(1, r1[1]),
        at(2, AutomationDisabled(automation_id=AUTOMATION), own),
        at(4, AutomationEnabled(automation_id=AUTOMATION), own),
        fired(5, r3[1]),
    ]
    return automation, [*r1, *r2, *r3], {"r1": r1[1], "r2": r2[1], "r3": r3[1]}


async def replay(pool: asyncpg.Pool, batches: list[list[LogRecord]]) -> dict[str, asyncpg.Record]:
    projection = TriggersProjection()
    async with pool.acquire() as conn, conn.transaction():
        await reset(conn, projection.name, projection.tables)
        await conn.execute("DELETE FROM projection_positions WHERE projection = $1", projection.name)
    runner = ProjectionRunner(projection, InMemoryEventLog(topic="events"), pool)
    await runner.start_positions([0, 1])
    for batch in batches:
        await runner.apply_batch(batch)
    rows = await pool.fetch("SELECT * FROM automation_firings ORDER BY occurred_at")
    return {row["variables"].get("run_id", "?"): row for row in rows}


async def test_a_replay_reading_runs_before_the_automations_switches_carries_out_what_fired_live_only(
    pool: asyncpg.Pool,
) -> None:
    automation, runs, finishes = history()
    partitions: list[list[LogRecord]] = [[], []]
    record_of: dict[object, LogRecord] = {}
    for p, events in ((0, automation), (1, runs)):
        for event in events:
            put(partitions, p, event)
            record_of[event.id] = partitions[p][-1]
    # Live: by time, a firing after the event it fired on (both at one minute); an event a batch, as a batch's
    # statements of different streams may be regrouped.
    in_time = sorted(automation + runs, key=lambda e: (e.occurred_at, isinstance(e.payload, AutomationFired)))

    live = await replay(pool, [[record_of[e.id]] for e in in_time])
    assert {run: row["status"] for run, row in live.items()} == {"r1": "delivered", "r3": "delivered"}

    # The automation's creation, then every run, then its switches and firings.
    replayed = await replay(pool, [partitions[0][:1], partitions[1], partitions[0][1:]])
    statuses = {run: row["status"] for run, row in replayed.items()}
    assert statuses == {"r1": "delivered", "r2": "pending", "r3": "delivered"}  # r3 keeps its facts, too
    assert replayed["r3"]["stream"] == finishes["r3"].stream
    # The runner, once the projection has read the whole log, knows the switches: r2 is not carried out.
    switches = await pool.fetchrow("SELECT switched_at, switched_on FROM automations")
    assert [was_on_at(switches, finishes[run].occurred_at) for run in ("r1", "r2", "r3")] == [True, False, True]

    # Read after the switch off, an event of the time it was off matches nothing, and one of the time it was on
    # before still matches. (One read before the switch on that came earlier is not matched: its firing keeps the
    # outcome its AutomationFired records, without the event's facts.)
    late = await replay(pool, [partitions[0][:3], partitions[1], partitions[0][3:]])
    assert [(row["status"], row["stream"]) for row in late.values()] == [
        ("delivered", finishes["r1"].stream),
        ("delivered", ""),
    ]
