"""Events of operating the registry itself: an admin's decisions about how projections read the log.
Stream: `operations:parked:<projection>:<stream>` (the decisions about one parked stream, in order).

A skip is on the log, not only in a table, so that a rebuild from scratch makes the same decision the
live projection made (projections/runtime.py says how both orders of reading converge).
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from modelreg.events.envelope import Event

ProjectionName = r"^[a-z][a-z0-9_]*$"


def parked_stream_decisions(projection: str, stream: str) -> str:
    return f"operations:parked:{projection}:{stream}"


class EventSkipped(Event):
    """Projection `projection` gives up on event `event_id` of `stream` where it fails to apply: the event
    is dropped instead of parking its stream, and the stream's later events are applied without it."""

    type = "operations.event_skipped"
    version = 1

    projection: str = Field(pattern=ProjectionName, max_length=64)
    stream: str = Field(min_length=1, max_length=1000)
    event_id: UUID
    reason: str = Field(min_length=1, max_length=2000)
