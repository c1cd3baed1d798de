"""Dumps of read-model tables, to compare a live build with a replay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg


async def dump(dsn: str, tables: Iterable[str]) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        result = {}
        for table in tables:
            rows = await conn.fetch(f"SELECT * FROM {table}")
            result[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
        return result
    finally:
        await conn.close()


async def positions(dsn: str, projection: str, topic: str) -> dict[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM projection_positions WHERE projection = $1 AND topic = $2",
            projection,
            topic,
        )
        return {r["partition"]: r["next_offset"] for r in rows}
    finally:
        await conn.close()
