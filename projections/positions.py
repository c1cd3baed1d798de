"""Tables of the projection runtime: positions, parked streams, dead letters. Shared by every projection."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from modelreg.projections.migrations import Migration

RUNTIME_MIGRATIONS = (
    Migration(
        "runtime",
        1,
        """
        CREATE TABLE projection_positions (
            projection text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            next_offset bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, topic, partition)
        );
        -- A stream whose event failed to apply (a bug, not bad input): its later events wait here, in
        -- order, while other streams go on; the runtime retries them.
        CREATE TABLE parked_streams (
            projection text NOT NULL,
            stream text NOT NULL,
            error text NOT NULL,
            attempts int NOT NULL DEFAULT 1,
            parked_at timestamptz NOT NULL DEFAULT now(),
            last_attempt_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, stream)
        );
        CREATE TABLE parked_events (
            projection text NOT NULL,
            stream text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            value bytea NOT NULL,
            PRIMARY KEY (projection, topic, partition, "offset")
        );
        CREATE INDEX parked_events_by_stream ON parked_events (projection, stream, "offset");
        -- Records that could not be decoded; each also went to the dead-letter topic.
        CREATE TABLE dead_letters (
            projection text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            reason text NOT NULL,
            key bytea,
            value bytea,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, topic, partition, "offset")
        );
        """,
    ),
    # The skips a projection has read on the log (operations.event_skipped), whichever order the rebuild
    # reads them in: an event named here is dropped, not parked, where it fails to apply.
    Migration(
        "runtime",
        2,
        """
        CREATE TABLE skipped_events (
            projection text NOT NULL,
            event_id uuid NOT NULL,
            stream text NOT NULL,
            reason text NOT NULL,
            skipped_by text NOT NULL,
            skipped_at timestamptz NOT NULL,
            PRIMARY KEY (projection, event_id)
        );
        """,
    ),
)

PROGRESS_CHANNEL = "modelreg_projection_progress"


async def stored_positions(conn: asyncpg.Connection, projection: str, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM projection_positions WHERE projection = $1 AND topic = $2",
        projection,
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def reset(conn: asyncpg.Connection, projection: str, tables: Sequence[str]) -> None:
    """Forget everything a projection built, so that it is rebuilt from offset 0. Call inside a transaction."""
    # Position rows first, as every batch locks them before it writes: the same order, so no deadlock.
    await conn.execute("SELECT 1 FROM projection_positions WHERE projection = $1 FOR UPDATE", projection)
    if tables:
        await conn.execute(f"TRUNCATE {', '.join(tables)}")
    await conn.execute(
        "UPDATE projection_positions SET next_offset = 0, updated_at = now() WHERE projection = $1", projection
    )
    for table in ("parked_events", "parked_streams", "dead_letters", "skipped_events"):
        await conn.execute(f"DELETE FROM {table} WHERE projection = $1", projection)
    await conn.execute("SELECT pg_notify($1, $2)", PROGRESS_CHANNEL, f"reset:{projection}")


async def topics_projected(pool: asyncpg.Pool) -> set[str]:
    """The topics whose events this database's read models were built from (one, but for a log moved elsewhere): a
    topic nothing was applied from (its positions reset, or left at 0 by a move) built nothing."""
    rows = await pool.fetch("SELECT DISTINCT topic FROM projection_positions WHERE next_offset > 0")
    return {r["topic"] for r in rows}


async def applied_ends(pool: asyncpg.Pool, topic: str) -> dict[int, int]:
    """How far into each partition of `topic` this database's readers applied, the furthest of them."""
    rows = await pool.fetch(
        "SELECT partition, max(next_offset) AS applied FROM projection_positions WHERE topic = $1 GROUP BY partition",
        topic,
    )
    return {r["partition"]: r["applied"] for r in rows}


def log_shorter_than_applied(topic: str, ends: dict[int, int], applied: dict[int, int]) -> str | None:
    """What to say when the log ends before what the read models applied (its positions read before its ends, so that
    events appended between the two readings make no false alarm); None when it does not.

    The topic was deleted and made again (by hand, or by a producer where the broker creates topics it is asked for),
    or restored from an older export: the projections would skip the new topic's events up to their old positions,
    each write acknowledged and then never shown."""
    short = sorted((p, ends.get(p, 0), at) for p, at in applied.items() if at > ends.get(p, 0))
    if not short:
        return None
    partition, end, at = short[0]
    more = f"; {len(short) - 1} more partitions alike" if len(short) > 1 else ""
    return (
        f"the event log {topic} ends before what the read models applied (partition {partition} ends at offset "
        f"{end:,}, the read models applied {at:,} events there{more}): "
        "its topic was deleted and made again, or restored from an older export, and the events written to it now "
        "would be skipped. Restore its events (`modelreg import` of the latest export), then rebuild every read model "
        "from what it holds (`modelreg rebuild`), docs/operations.md"
    )
