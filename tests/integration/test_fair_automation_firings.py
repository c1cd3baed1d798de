"""The automation runner's window of pending firings is shared fairly: one member's automations, whose webhook
never answers, cannot fill it and hold up every other team's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from modelreg.projections.launch_queries import LaunchQueries

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def automation_of(pool: asyncpg.Pool, creator: str) -> UUID:
    automation_id = uuid7()
    await pool.execute(
        "INSERT INTO automations (automation_id, name, trigger, action, trigger_event, cooldown_s, enabled, "
        "secret_generation, created_at, created_by, switched_at, switched_on) "
        "VALUES ($1, 'hook', '{}', '{}', 'run_finished', 0, true, 0, $2, $3, ARRAY[$2::timestamptz], ARRAY[true])",
        automation_id,
        T0,
        creator,
    )
    return automation_id


async def pending(pool: asyncpg.Pool, automation_id: UUID, count: int, start: int) -> None:
    await pool.executemany(
        "INSERT INTO automation_firings (automation_id, event_id, event_type, stream, actor, variables, status, "
        "occurred_at) VALUES ($1, $2, 'runs.run_finished', 'run:acme/p/r', 'user:x', '{}', 'pending', $3)",
        [(automation_id, uuid7(), T0 + timedelta(seconds=start + n)) for n in range(count)],
    )


async def test_one_members_pending_firings_leave_room_for_the_others(pool: asyncpg.Pool) -> None:
    mallory = [await automation_of(pool, "user:mallory") for _ in range(3)]
    for n, automation_id in enumerate(mallory):
        await pending(pool, automation_id, 150, start=n * 150)  # 450 firings, the oldest
    alice = await automation_of(pool, "user:alice")
    await pending(pool, alice, 5, start=1000)

    window = await LaunchQueries(pool).pending_firings(200)

    by_automation = [f["automation_id"] for f in window]
    assert sum(a in mallory for a in by_automation) == 15  # all three of mallory's together, 5 of each
    assert by_automation.count(alice) == 5
    assert [f["occurred_at"] for f in window] == sorted(f["occurred_at"] for f in window)  # oldest first
    assert "nth" not in window[0] and "of_automation" not in window[0]


async def test_one_dead_webhook_leaves_room_for_its_creators_other_automations(pool: asyncpg.Pool) -> None:
    # A webhook that never answers is retried for minutes: an evaluation's launch, of the same creator, waited
    # behind its firings.
    dead_webhook, launch = await automation_of(pool, "user:alice"), await automation_of(pool, "user:alice")
    await pending(pool, dead_webhook, 50, start=0)
    await pending(pool, launch, 1, start=100)

    window = await LaunchQueries(pool).pending_firings(200)

    assert [f["automation_id"] for f in window].count(dead_webhook) == 5
    assert [f["automation_id"] for f in window].count(launch) == 1
