"""Reads of the audit log (every event, as who did what when): a stream's history, the filtered audit page,
and whether a client's command was already accepted. Never writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
import orjson

from modelreg.events.envelope import Actor
from modelreg.projections.readable import IDENTITY_TYPES, SCOPE_RECORDS

# What a page of records reads: each record's payload (its details) may be as big as an event (8 MiB); it is read
# when asked, a few records at a time (details_of; graphql/context.py's AuditDetailsLoader).
_LISTED_COLUMNS = (
    "event_id, type, stream, occurred_at, actor_kind, actor_id, correlation_id, causation_id, stream_seq, "
    "recorded_offline_at, scope"
)


class CausedEvent(NamedTuple):
    """An event of a client's command, as the audit log keeps it (services/commands/command_identity.py)."""

    event_id: UUID
    type: str
    stream: str
    subject: str | None  # the payload's value of the field asked for (the id of what the command made, say)


class AuditQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def caused_by(self, command_id: UUID, actor: Actor, subject: str | None = None) -> list[CausedEvent]:
        """The events of this actor's commands with this client id, oldest first (services/commands/read_models.py),
        through the causation index; `subject`: a payload field whose value to read with each (the payload is read
        only then: a metric batch's is megabytes)."""
        rows = await self.pool.fetch(
            "SELECT event_id, type, stream, CASE WHEN $4::text IS NULL THEN NULL ELSE payload ->> $4::text END "
            "FROM audit_log WHERE causation_id = $1 AND actor_kind = $2 AND actor_id = $3 ORDER BY event_id",
            command_id,
            actor.kind,
            actor.id,
            subject,
        )
        return [CausedEvent(*row) for row in rows]

    async def history(
        self, stream: str, limit: int, before_seq: int | None = None, artifact_version: UUID | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; `before_seq` is the stream_seq of the last action of the previous page. `artifact_version`:
        only the actions on that version of a registered model, read through the stream's own index (an index of
        their own cost every registry event a write in the audit projection, whose replay is what bounds a rebuild)."""
        if artifact_version is None:
            rows = await self.pool.fetch(
                f"SELECT {_LISTED_COLUMNS} FROM audit_log WHERE stream = $1 "
                "AND ($3::bigint IS NULL OR stream_seq < $3) ORDER BY stream_seq DESC LIMIT $2",
                stream,
                limit,
                before_seq,
            )
        else:
            rows = await self.pool.fetch(
                f"SELECT {_LISTED_COLUMNS} FROM audit_log WHERE stream = $1 AND type LIKE 'registry.%' "
                "AND payload ? 'artifact_version_id' "
                "AND payload ->> 'artifact_version_id' = $4 AND stream_seq < coalesce($3::bigint, 9223372036854775807) "
                "ORDER BY stream_seq DESC LIMIT $2",
                stream,
                limit,
                before_seq,
                str(artifact_version),
            )
        return [dict(r) for r in rows]

    async def audit_page(
        self,
        *,
        actor: str | None,
        stream: str | None,
        action: str | None,
        since: Any,
        actions: Sequence[str] | None = None,
        until: Any,
        before: tuple[Any, UUID] | None,
        limit: int,
        hidden_scopes: Sequence[str] = (),
        identity_streams: Sequence[str] | None = None,
        administered: Sequence[str] = (),
        not_administered: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (occurred_at, event_id) of the last record of the previous page.
        `hidden_scopes`: private entities and models the caller may not read (an automation's creation or change
        also where it launches jobs: readable.launched_in); `identity_streams`: the streams whose
        identity records it reads, None: every one, besides the records about the scopes it administers
        (`administered`, `not_administered`: Readable's) (projections/readable.py). Both filter the rows an index finds
        anyway: an index of their own would cost every event a write in the audit projection, whose replay is what
        bounds a rebuild."""
        kind, _, ident = (actor or "").partition(":")
        rows = await self.pool.fetch(
            f"""SELECT {_LISTED_COLUMNS} FROM audit_log
               WHERE ($1::text IS NULL OR (actor_kind = $1 AND actor_id = $2))
                 AND ($3::text IS NULL OR stream = $3)
                 AND ($4::text IS NULL OR type = $4)
                 AND ($5::timestamptz IS NULL OR occurred_at >= $5)
                 AND ($6::timestamptz IS NULL OR occurred_at < $6)
                 AND ($7::timestamptz IS NULL OR (occurred_at, event_id) < ($7, $8::uuid))
                 AND (scope IS NULL OR scope <> ALL($10::text[]))
                 AND NOT coalesce(
                     jsonb_typeof(payload -> 'scopes') = 'array' AND payload -> 'scopes' ?| $10::text[], false)
                 AND NOT coalesce(
                     jsonb_typeof(payload -> 'trigger') = 'object' AND payload -> 'action' ->> 'kind' = 'launch'
                     AND 'entity:' || (payload -> 'action' ->> 'entity') = ANY($10::text[]), false)
                 AND ($11::text[] IS NULL OR type = ANY($11::text[]))
                 AND ($12::text[] IS NULL OR type NOT LIKE '{IDENTITY_TYPES}%' OR stream = ANY($12::text[])
                      OR (type = ANY($15::text[]) AND (payload ->> 'scope' = ANY($13::text[])
                          OR ('registry' = ANY($13::text[]) AND payload ->> 'scope' LIKE 'model:%'
                              AND payload ->> 'scope' <> ALL($14::text[])))))
               ORDER BY occurred_at DESC, event_id DESC LIMIT $9""",
            kind or None,
            ident or None,
            stream,
            action,
            since,
            until,
            before[0] if before else None,
            before[1] if before else None,
            limit,
            list(hidden_scopes),
            None if actions is None else list(actions),
            None if identity_streams is None else list(identity_streams),
            list(administered),
            list(not_administered),
            list(SCOPE_RECORDS),
        )
        return [dict(r) for r in rows]

    async def details_of(self, event_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The payloads of records listed without them, with `read_bytes`: their size as JSON, to count against a
        request's budget."""
        rows = await self.pool.fetch(
            "SELECT event_id, payload::text AS payload FROM audit_log WHERE event_id = ANY($1::uuid[])", event_ids
        )
        return {r["event_id"]: {"payload": orjson.loads(r["payload"]), "read_bytes": len(r["payload"])} for r in rows}
