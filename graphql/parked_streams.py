"""Parked streams, for installation admins: which projection stopped applying which stream, at which
event and why; retry one now, or skip the event it is parked at (with a reason, recorded on the log)."""

from __future__ import annotations

from typing import Any

import graphene

from modelreg.errors import NotYetVisible
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.pages import Cursors, page_of, page_size, paged
from modelreg.projections.parked_queries import ParkedStreamQueries
from modelreg.projections.progress import ProjectionLagging
from modelreg.services.commands.parked_streams import SkipParkedEvent, retry_parked_stream


class ParkedStream(graphene.ObjectType):
    projection = graphene.String(required=True)
    stream = graphene.String(required=True)
    error = graphene.String(required=True, description="why its first parked event does not apply")
    since = graphene.DateTime(required=True, description="when the stream was parked")
    attempts = graphene.Int(required=True, description="how often it was tried")
    last_attempt_at = graphene.DateTime(required=True)
    first_event_id = graphene.ID(description="the event it is parked at: skipParkedEvent takes this id")
    first_event_type = graphene.String()
    first_event_position = graphene.String(description="topic/partition/offset on the event log")
    waiting_events = graphene.Int(required=True, description="its events not applied yet, the first one included")


def _parked(row: dict[str, Any]) -> dict[str, Any]:
    position = f"{row['topic']}/{row['partition']}/{row['offset']}" if row["topic"] is not None else None
    return {
        "projection": row["projection"],
        "stream": row["stream"],
        "error": row["error"],
        "since": row["parked_at"],
        "attempts": row["attempts"],
        "last_attempt_at": row["last_attempt_at"],
        "first_event_id": row["first_event_id"],
        "first_event_type": row["first_event_type"],
        "first_event_position": position,
        "waiting_events": row["waiting"],
    }


ParkedStreamPage = page_of(ParkedStream)


class ParkedStreamRelease(graphene.ObjectType):
    released = graphene.Boolean(required=True, description="its events are applied; nothing of it waits")
    parked_stream = graphene.Field(ParkedStream, description="as it is still parked (with the new error), if it is")


class RetryParkedStreamInput(graphene.InputObjectType):
    projection = graphene.String(required=True)
    stream = graphene.String(required=True)


class SkipParkedEventInput(graphene.InputObjectType):
    projection = graphene.String(required=True)
    stream = graphene.String(required=True)
    event_id = graphene.ID(required=True, description="the event the stream is parked at (parkedStreams shows it)")
    reason = graphene.String(required=True, description="why: the audit log keeps it with who skipped")


class ParkedStreamQueryFields(graphene.ObjectType):
    parked_streams = paged(
        ParkedStreamPage,
        description="Streams a projection stopped applying after an error, by projection and stream. "
        "Installation admins only.",
    )

    @staticmethod
    async def resolve_parked_streams(
        root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None
    ) -> dict:
        info.context.caller.require("admin", (), "listing parked streams")
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, str, str)
        found = await ParkedStreamQueries(info.context.reads.pool).page(
            after=(position[0], position[1]) if position else None, limit=limit + 1
        )
        shown = found[:limit]
        end = cursors.encode(shown[-1]["projection"], shown[-1]["stream"]) if shown else after
        return {"items": [_parked(r) for r in shown], "end_cursor": end, "has_next_page": len(found) > limit}


class ParkedStreamMutations(graphene.ObjectType):
    retry_parked_stream = graphene.Field(
        ParkedStreamRelease,
        required=True,
        input=RetryParkedStreamInput(required=True),
        description="Apply the stream's parked events now (after a fix was deployed, say). Installation admins only.",
    )
    skip_parked_event = graphene.Field(
        ParkedStreamRelease,
        required=True,
        input=SkipParkedEventInput(required=True),
        description="Give up on the event the stream is parked at, in this projection: recorded on the event log "
        "(a rebuild decides the same), the stream's later events are applied without it. Installation admins only.",
    )

    @staticmethod
    async def resolve_retry_parked_stream(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        info.context.caller.require("admin", (), "retrying a parked stream")
        app = info.context.app
        still = await retry_parked_stream(app.reads.pool, app.log, input["projection"], input["stream"])
        return {"released": still is None, "parked_stream": _parked(still) if still else None}

    @staticmethod
    async def resolve_skip_parked_event(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = parse_command(SkipParkedEvent, input)
        app = info.context.app
        accepted = await app.execute(command, info.context.caller)
        try:  # read-your-writes: the projection that parked the stream has read the skip
            await app.progress.wait_for([command.projection], accepted.positions, app.read_your_writes_timeout_s)
        except ProjectionLagging as exc:
            raise NotYetVisible(
                f"the skip is recorded, but projection {command.projection} has not read it yet ({exc}): "
                "`modelreg parked` shows the stream until it has"
            ) from exc
        still = await ParkedStreamQueries(app.reads.pool).parked(command.projection, command.stream)
        return {"released": still is None, "parked_stream": _parked(still) if still else None}
