"""A metric batch is word from its run: the client skips its beat when a batch reached the server, so a run
that logs all the time showed the time of its start as `heartbeatAt` (W&B's scripts sort live runs by it).
A run whose client never beat (another tool, an offline sync) keeps none, and is never marked crashed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from support.applied import applied

from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.log import EventLog
from modelreg.events.runs import MetricSeries, MetricsLogged, RunHeartbeat, RunStarted, run_stream
from modelreg.projections.registry import RegistryProjection
from modelreg.services.settings import Settings

ALICE = Actor(kind="user", id="alice")
START = datetime(2026, 12, 1, tzinfo=UTC)


def at(seconds: int, payload: Event, run_id: str) -> Envelope:
    stream = run_stream("acme", "nature", run_id)
    return Envelope.new(payload, stream=stream, actor=ALICE, occurred_at=START + timedelta(seconds=seconds))


def metrics(run_id: str, step: int) -> MetricsLogged:
    series = (MetricSeries(key="loss", first_step=step, values=(0.5,)),)
    return MetricsLogged(entity="acme", project="nature", run_id=run_id, series=series)


def of(run_id: str) -> dict[str, str]:
    return {"entity": "acme", "project": "nature", "run_id": run_id}


async def project(settings: Settings, pool: asyncpg.Pool, log: EventLog) -> None:
    await applied(settings, pool, log, RegistryProjection())


@pytest.mark.parametrize("batches", ["one batch", "an event per batch"])
async def test_a_metric_batch_moves_the_heartbeat_of_a_run_whose_client_beats(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, batches: str
) -> None:
    history = [
        at(0, RunStarted(**of("beats")), "beats"),
        at(1, RunHeartbeat(**of("beats")), "beats"),
        at(0, RunStarted(**of("never-beat")), "never-beat"),
        at(30, metrics("beats", 0), "beats"),
        at(30, metrics("never-beat", 0), "never-beat"),
        at(90, metrics("beats", 1), "beats"),
        at(60, metrics("beats", 2), "beats"),  # recorded earlier, sent later: the newest word stays
    ]
    if batches == "one batch":  # the metrics folded into their chunks (projections/metric_batches.py)
        await event_log.append(history)
        await project(settings, pool, event_log)
    else:
        for event in history:
            await event_log.append([event])
            await project(settings, pool, event_log)

    heard = await pool.fetch("SELECT run_id, last_heartbeat_at FROM runs")
    assert {r["run_id"]: r["last_heartbeat_at"] for r in heard} == {
        "beats": START + timedelta(seconds=90),
        "never-beat": None,
    }
    assert await pool.fetch("SELECT projection, stream, error FROM parked_streams") == []
