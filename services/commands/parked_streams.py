"""Releasing parked streams: an admin retries one now, or skips the event it is parked at, with a reason.

A skip is a command whose event (`operations.event_skipped`) goes on the log, so that a rebuild makes the
same decision (projections/runtime.py); a retry only asks the runtime to try again, which changes no
decision and needs no event.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from modelreg.errors import InvalidInput, NotFound, quoted
from modelreg.events.log import EventLog
from modelreg.events.operations import EventSkipped, ProjectionName, SkipReason, StreamName, parked_stream_decisions
from modelreg.projections.parked_queries import ParkedStreamQueries
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.commands.commands import Command
from modelreg.services.commands.decisions import CommandContext, Decision, Handler
from modelreg.services.commands.read_models import ParkedStreamReads
from modelreg.services.projections_catalog import PROJECTIONS, projection


class SkipParkedEvent(Command):
    needs = "admin"

    projection: ProjectionName
    stream: StreamName
    event_id: UUID
    reason: SkipReason


async def parked_stream(parked: ParkedStreamReads, projection_name: str, stream: str) -> dict[str, Any]:
    """The stream as it is parked, or an error telling what to look at instead."""
    if projection_name not in PROJECTIONS:
        raise InvalidInput(f"no projection {quoted(projection_name)}; known: {', '.join(sorted(PROJECTIONS))}")
    found = await parked.parked(projection_name, stream)
    if found is None:
        raise NotFound(f"{quoted(stream)} is not parked in projection {projection_name}: `modelreg parked` lists them")
    return found


async def skip_parked_event(cmd: SkipParkedEvent, ctx: CommandContext) -> Decision:
    found = await parked_stream(ctx.reads.parked, cmd.projection, cmd.stream)
    if found["first_event_id"] != cmd.event_id:
        raise InvalidInput(
            f"event {cmd.event_id} is not the one {cmd.stream} is parked at in projection {cmd.projection}: "
            f"skip its first parked event, {found['first_event_id']} ({found['first_event_type']}), the one that fails"
        )
    skipped = EventSkipped(
        projection=cmd.projection,
        stream=cmd.stream,
        event_id=cmd.event_id,
        reason=cmd.reason,
        scope=found.get("first_event_scope"),
    )
    return Decision([ctx.event(skipped, parked_stream_decisions(cmd.projection, cmd.stream))], cmd.event_id)


async def retry_parked_stream(
    pool: asyncpg.Pool, log: EventLog, projection_name: str, stream: str
) -> dict[str, Any] | None:
    """Apply the stream's parked events now, in this process (the runtime locks as a runner does, so the
    projector's runners are not disturbed). Returns the stream as it is still parked, or None: released."""
    parked = ParkedStreamQueries(pool)
    await parked_stream(parked, projection_name, stream)
    await ProjectionRunner(projection(projection_name), log, pool).retry_stream(stream)
    return await parked.parked(projection_name, stream)


PARKED_STREAM_HANDLERS: dict[type[Command], Handler] = {SkipParkedEvent: skip_parked_event}
