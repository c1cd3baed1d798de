"""Times a caller sends (filters, cursors) as PostgreSQL's timestamptz takes them.

asyncpg sends an aware time in UTC: year 1 at +14:00, or 9999-12-31 at -14:00, has no UTC time Python can hold,
and the query failed inside the driver (an INTERNAL, retriable error for the caller's mistake).
"""

from __future__ import annotations

from datetime import UTC, datetime


def storable_time(at: datetime) -> datetime:
    """`at`, read as UTC when it has no zone (as W&B's server reads one); ValueError when UTC cannot hold it."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        at.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{at.isoformat()} is out of range: a time in UTC runs from year 1 to 9999") from None
    return at


def parsed_time(text: str) -> datetime:
    """An ISO 8601 time from a cursor or a filter; ValueError when it is none, or out of range."""
    return storable_time(datetime.fromisoformat(text))
