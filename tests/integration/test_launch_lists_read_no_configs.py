"""Lists of Launch jobs (the queue page, what agents poll, the jobs behind a page of runs) and of automations read
their rows without the columns that may each be as big as an event: a job's source, config and overrides, an
automation's action. Those are read on their own, with their size to count against the request's budget
(graphql/context.py); one job or automation read by id is read whole. Against the real tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from modelreg.projections.launch_queries import LaunchQueries

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = {"lr": 0.1, "notes": "x" * 100_000}
SOURCE = {"kind": "git", "git_remote": "https://example.com/acme/nature.git", "entry_point": ["python", "train.py"]}
ACTION = {"kind": "launch", "queue": "gpu", "entity": "acme", "project": "nature", "source": SOURCE, "config": CONFIG}
BIG_JOB_COLUMNS = {"source", "config", "overrides"}


async def enqueue(pool: asyncpg.Pool, n: int) -> UUID:
    job_id = uuid7()
    await pool.execute(
        "INSERT INTO launch_jobs (job_id, queue, entity, project, priority, source, config, overrides, triggered_by, "
        "state, enqueued_at, enqueued_by) VALUES ($1, 'gpu', 'acme', 'nature', 0, $2, $3, $4, $5, 'queued', $6, "
        "'user:alice')",
        job_id,
        SOURCE,
        CONFIG,
        {"lr": 0.01},
        {"automation_id": str(uuid7()), "event_id": str(uuid7()), "event_type": "registry.alias_added"},
        T0 + timedelta(seconds=n),
    )
    return job_id


async def automation(pool: asyncpg.Pool, n: int) -> UUID:
    automation_id = uuid7()
    await pool.execute(
        "INSERT INTO automations (automation_id, name, trigger, action, trigger_event, cooldown_s, enabled, "
        "secret_generation, created_at, created_by, switched_at, switched_on) VALUES ($1, $2, $3, $4, "
        "'alias_added', 0, true, 1, $5, 'user:alice', ARRAY[$5::timestamptz], ARRAY[true])",
        automation_id,
        f"evaluate-{n}",
        {"event": "alias_added", "alias_pattern": "candidate"},
        ACTION,
        T0 + timedelta(seconds=n),
    )
    return automation_id


def without_big_job_columns(rows: list[dict[str, Any]]) -> bool:
    return all(not BIG_JOB_COLUMNS & row.keys() and row["triggered_by"] and row["entity"] == "acme" for row in rows)


async def test_lists_of_jobs_leave_their_sources_and_configs_to_be_read_when_asked(pool: asyncpg.Pool) -> None:
    ids = [await enqueue(pool, n) for n in range(3)]
    launch = LaunchQueries(pool)

    assert without_big_job_columns(await launch.jobs(queue="gpu", state=None, limit=10))
    assert without_big_job_columns(await launch.jobs(queue=None, state="queued", limit=10))
    assert without_big_job_columns(await launch.next_waiting(["gpu"], 10))
    assert without_big_job_columns(list((await launch.jobs_by_ids(ids)).values()))

    contents = await launch.job_contents(ids[:2])
    assert contents.keys() == set(ids[:2])
    assert {key: contents[ids[0]][key] for key in BIG_JOB_COLUMNS} == {
        "source": SOURCE,
        "config": CONFIG,
        "overrides": {"lr": 0.01},
    }
    assert contents[ids[0]]["read_bytes"] > 100_000  # what the request's budget counts: the config's notes too

    one = await launch.job(ids[0])
    assert one is not None and one["config"] == CONFIG  # one job by id is read whole


async def test_lists_of_automations_leave_their_actions_to_be_read_when_asked(pool: asyncpg.Pool) -> None:
    ids = [await automation(pool, n) for n in range(3)]
    launch = LaunchQueries(pool)

    for listed in (await launch.automations(limit=10), await launch.automations_launching_into("gpu")):
        assert [row["automation_id"] for row in listed] == ids
        assert all("action" not in row and row["trigger"]["event"] == "alias_added" for row in listed)

    actions = await launch.automation_actions(ids[1:])
    assert actions.keys() == set(ids[1:])
    assert actions[ids[1]]["action"] == ACTION
    assert actions[ids[1]]["read_bytes"] > 100_000

    one = await launch.automation(ids[0])
    assert one is not None and one["action"] == ACTION
