"""Reads of the runtime's parked streams, for the people who release them (CLI, admin GraphQL, /healthz)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from modelreg.projections.readable import scope_of

_PARKED = """
SELECT s.projection, s.stream, s.error, s.attempts, s.parked_at, s.last_attempt_at, first.topic, first.partition,
       first."offset", first.value,
       (SELECT count(*) FROM parked_events e WHERE e.projection = s.projection AND e.stream = s.stream) AS waiting
FROM parked_streams s
LEFT JOIN LATERAL (
    SELECT topic, partition, "offset", value FROM parked_events e
    WHERE e.projection = s.projection AND e.stream = s.stream ORDER BY topic, partition, "offset" LIMIT 1
) first ON true
"""


_AFTER = "WHERE $1::text IS NULL OR (s.projection, s.stream) > ($1, $2) ORDER BY s.projection, s.stream LIMIT $3"


class ParkedStreamQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def page(self, *, after: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        """Parked streams by projection and stream, from after `after`."""
        rows = await self.pool.fetch(
            _PARKED + _AFTER,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_parked(r) for r in rows]

    async def parked(self, projection: str, stream: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(_PARKED + "WHERE s.projection = $1 AND s.stream = $2", projection, stream)
        return _parked(row) if row else None


def _parked(row: asyncpg.Record) -> dict[str, Any]:
    found = dict(row)
    header = _header(found.pop("value"))
    found["first_event_id"] = header.get("id")
    found["first_event_type"] = header.get("type")
    found["first_event_scope"] = header.get("scope")
    return found


def _header(value: bytes | None) -> dict[str, Any]:
    """The first parked event's id and type, read without decoding it (it may be of a newer schema)."""
    try:
        raw = orjson.loads(value or b"")
        event_id = UUID(raw["id"]) if isinstance(raw.get("id"), str) else None
        payload = raw.get("payload")
        return {
            "id": event_id,
            "type": raw.get("type") if isinstance(raw.get("type"), str) else None,
            "scope": scope_of(payload) if isinstance(payload, dict) else None,
        }
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return {}
