"""Events of operating the registry itself: an admin's decisions about how projections read the log.
Stream: `operations:parked:<projection>:<stream>` (the decisions about one parked stream, in order).

A skip is on the log, not only in a table, so that a rebuild from scratch makes the same decision the
live projection made (projections/runtime.py says how both orders of reading converge).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

from modelreg.events.envelope import Event
from modelreg.events.identity import ReadScope

# Field types shared with the command that skips (services/commands/parked_streams.py).
ProjectionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
StreamName = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


def _says_why(reason: str) -> str:
    if not reason.strip():
        raise ValueError("say why the event is skipped: the audit log keeps it")
    return reason


SkipReason = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_says_why)]


def parked_stream_decisions(projection: str, stream: str) -> str:
    return f"operations:parked:{projection}:{stream}"


class EventSkipped(Event):
    """Projection `projection` gives up on event `event_id` of `stream` where it fails to apply: the event
    is dropped instead of parking its stream, and the stream's later events are applied without it."""

    type = "operations.event_skipped"
    version = 2

    projection: ProjectionName
    stream: StreamName
    event_id: UUID
    reason: SkipReason
    scope: ReadScope = None  # the skipped event's: the stream's name is as private as the event
