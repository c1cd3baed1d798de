"""Live events for UIs: GraphQL subscriptions over a websocket (graphql-transport-ws) at /graphql.

A subscription tails the event log itself (`events/tail.py`), not the read models: an event is sent as
soon as it is on the log, possibly before the projections have applied it. A UI that queries after an
event should therefore look things up by the ids the event carries (and retry a NOT_FOUND briefly); it
tells which events it has seen by their `position`, and resumes after a dropped socket by subscribing
again with `after: <the last event's cursor>`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import InvalidInput, PermissionDenied, Unavailable
from modelreg.events.codec import to_json_dict
from modelreg.events.envelope import Envelope
from modelreg.events.filters import EventFilter
from modelreg.events.identity import ApiKeyRevoked
from modelreg.events.launch import ends_attempt
from modelreg.events.log import LogPosition
from modelreg.events.registry import AliasAdded, AliasRemoved, VersionLinked
from modelreg.events.tail import LogTails, TailedEvent
from modelreg.graphql.context import RequestContext
from modelreg.graphql.errors import reported
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.live_readable import LiveReadable
from modelreg.projections.progress import ProjectionLagging
from modelreg.services.automations.shown_urls import (
    BY_ITS_CREATOR,
    CARRY_A_URL,
    payload_shown_to_others,
    reads_whole_urls,
)
from modelreg.services.commands.access import Caller

# A replaying subscription looks its caller up again at most this often (a query each time).
LOOK_UP_WHILE_REPLAYING_EVERY_S = 1.0


@dataclass
class SubscriberContext(RequestContext):
    """The context of a websocket connection: one per socket, shared by its subscriptions."""

    tails: LogTails
    # The socket's key looked up again (PermissionDenied once revoked): each subscription starts from the
    # caller's grants and the private scopes as they are when it subscribes, not as they were at connection_init.
    look_up_caller: Callable[[], Awaitable[Caller]] | None = None
    # Each subscription's log reader, with its close once one was asked for (see close_tail).
    open_tails: dict[AsyncGenerator[TailedEvent, None], asyncio.Future[None] | None] = field(default_factory=dict)
    # Closes the socket (4403): its key was revoked. Set by the websocket handler, which owns the socket.
    refuse_revoked_key: Callable[[], Awaitable[None]] | None = None
    # Counts the socket among its principal's at connection_init, or closes it (False) when they hold as many as they
    # may. Set by the websocket handler, as above.
    hold_socket: Callable[[], Awaitable[bool]] | None = None

    async def close_tail(self, tail: AsyncGenerator[TailedEvent, None]) -> None:
        """Closes a subscription's log reader once, for whichever asks first: the subscription as it ends or the
        socket as it closes; the other waits for that close. Both come at once when a socket ends while its
        subscription is busy (its key revoked, a client gone mid-send), and a second aclose() of a generator that
        is still closing is a RuntimeError."""
        closing = self.open_tails.get(tail)
        if closing is None:
            # Waiting for the log in its subscription's task, whose cancellation closes it.
            if isinstance(tail, AsyncGeneratorType) and tail.ag_running:
                return
            # In a task of its own, so that a caller cancelled meanwhile does not leave the reader half closed.
            closing = asyncio.ensure_future(tail.aclose())
            closing.add_done_callback(_retrieved)
            self.open_tails[tail] = closing
        await asyncio.shield(closing)

    async def close_tails(self) -> None:
        """When the socket closes: stop the log readers of its subscriptions, whatever they are doing. The
        server cancels their tasks, but a subscription whose task was blocked sending to a client that
        stopped reading is left suspended, and only the garbage collector would ever close its reader."""
        for tail in list(self.open_tails):
            with suppress(RuntimeError):  # it started reading again before its close did: its cancellation closes it
                await self.close_tail(tail)
        self.open_tails.clear()


def _retrieved(closing: asyncio.Future[None]) -> None:
    """Whoever awaited this close may have been cancelled meanwhile: its outcome is taken here, not reported by
    asyncio as never retrieved (its callers, still there, get it from the future)."""
    if not closing.cancelled():
        closing.exception()


class EventPosition(graphene.ObjectType):
    topic = graphene.String(required=True)
    partition = graphene.Int(required=True)
    offset = graphene.Float(required=True, description="the offset in the partition (a Float: offsets outgrow Int)")


class EventRecord(graphene.ObjectType):
    """An event as it is on the log: the envelope, and the payload as JSON."""

    id = graphene.ID(required=True)
    type = graphene.String(required=True, description="e.g. registry.alias_added")
    version = graphene.Int(required=True, description="the payload's schema version")
    stream = graphene.String(required=True, description="e.g. registered_model:nature-classification")
    occurred_at = graphene.DateTime(required=True, description="when the server received it")
    recorded_offline_at = graphene.DateTime(description="an offline run's command: when its client says it happened")
    actor = graphene.String(required=True, description="user:alice, service:ci, automation:<id>")
    correlation_id = graphene.ID(required=True)
    causation_id = graphene.ID()
    payload = JSONValue(required=True)
    position = graphene.Field(EventPosition, required=True, description="where the event is on the log")
    cursor = graphene.String(
        required=True, description="pass as `after` to a new subscription to go on right after this event"
    )


def event_record(tailed: TailedEvent) -> dict[str, Any]:
    envelope = tailed.envelope
    return {
        "id": envelope.id,
        "type": envelope.type,
        "version": envelope.version,
        "stream": envelope.stream,
        "occurred_at": envelope.occurred_at,
        "recorded_offline_at": envelope.recorded_offline_at,
        "actor": str(envelope.actor),
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        # The JSON a consumer of the topic reads, less what the API never serves (a key's hash).
        "payload": {
            k: v for k, v in to_json_dict(envelope)["payload"].items() if k not in envelope.payload.private_fields
        },
        "position": tailed.position._asdict(),
        "cursor": tailed.resume_point,
    }


async def _live_events(
    info: graphene.ResolveInfo,
    wanted: Callable[[], EventFilter],
    from_now: bool,
    after: str | None,
    also: Callable[[Envelope], bool] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    # A refusal (bad arguments, no websocket, too many subscribers) ends the subscription with one `next`
    # message carrying the error and its code, then `complete`; the socket and its other subscriptions go on.
    try:
        context = info.context
        if not isinstance(context, SubscriberContext):
            raise InvalidInput("subscriptions are served over a websocket at /graphql (protocol graphql-transport-ws)")
        event_filter = wanted()
        # A live event about a private entity or model reaches only who may read it, an identity event only an
        # installation admin and the principal it is about: the caller is looked up once the identity read model
        # shows the log up to its end (graphql/live_readable.py).
        caller, reflected = context.caller, await _identity_caught_up(context)
        if caller is not None and context.look_up_caller is not None:
            caller = await context.look_up_caller()
        key_id = caller.key_id if caller else None
        job_id, job_attempt = (caller.job_id, caller.job_attempt) if caller else (None, None)
        readable = LiveReadable(caller, reflected) if caller else None

        def revokes_the_key(envelope: Envelope) -> bool:
            """The socket's key checked once, at connection_init: its revocation, seen here, ends the socket (a job
            attempt's key is revoked by the end of its job's attempt: projections/identity.py)."""
            payload = envelope.payload
            if isinstance(payload, ApiKeyRevoked):
                return key_id is not None and payload.key_id == key_id
            # Replayed from a cursor, the end of an earlier attempt of the job is no end of this key's.
            return job_id is not None and ends_attempt(payload, job_id, job_attempt)

        def keep(envelope: Envelope, position: LogPosition) -> bool:
            if revokes_the_key(envelope):
                return True
            if readable is not None and not readable.sees(envelope, position):
                return False
            return event_filter.matches(envelope) and (also is None or also(envelope))

        # Who created each automation whose events pass: they alone read its webhook url whole. Looked up once per
        # automation (its creator never changes); one not in the read model yet is shown as to anyone else.
        creators: dict[UUID, str] = {}

        async def creator_of(envelope: Envelope) -> str | None:
            if envelope.type in BY_ITS_CREATOR:
                return str(envelope.actor)
            automation_id = getattr(envelope.payload, "automation_id", None)
            if not isinstance(automation_id, UUID):
                return None
            if automation_id not in creators:
                found = (await context.launch.automation_creators([automation_id])).get(automation_id)
                if found is None:
                    return None
                creators[automation_id] = found
            return creators[automation_id]

        owner = str(caller.actor) if caller else None
        # From `reflected`, not from the log's end as the tail reads it again: a team made private, a grant or the
        # key revoked in between is on the log but not in `caller`, and reaches `readable` and `revokes_the_key`
        # only if the tail reads it. A few events appended as the subscription started come along.
        tail = context.tails.follow(
            context.app.log,
            from_now=from_now,
            resume_point=after,
            keep=keep,
            owner=owner,
            from_positions=reflected if from_now else None,
        )
        context.open_tails[tail] = None
        clock = asyncio.get_running_loop()
        look_up_again_at = clock.time() + LOOK_UP_WHILE_REPLAYING_EVERY_S
        try:
            async for tailed in tail:
                envelope, position = tailed.envelope, tailed.position
                if revokes_the_key(envelope):
                    if context.refuse_revoked_key is not None:
                        await context.refuse_revoked_key()
                    return
                # A key or a grant revoked during a replay is on the log after all that is replayed: looked up
                # again, so that it ends the replay (or hides what it hid) within a second, not at the replay's end.
                if readable is not None and context.look_up_caller is not None and readable.replays(position):
                    if clock.time() >= look_up_again_at:
                        try:
                            readable.seen_now(await context.look_up_caller())
                        except PermissionDenied:
                            if context.refuse_revoked_key is not None:
                                await context.refuse_revoked_key()
                            return
                        look_up_again_at = clock.time() + LOOK_UP_WHILE_REPLAYING_EVERY_S
                    # The tail judged a whole batch at once, perhaps before the last look-up.
                    if not keep(envelope, position):
                        continue
                record = event_record(tailed)
                if envelope.type in CARRY_A_URL and not reads_whole_urls(caller, await creator_of(envelope)):
                    record["payload"] = payload_shown_to_others(envelope.type, record["payload"])
                yield record
        finally:
            try:  # the tail closes with this stream, not when the collector gets to it
                await context.close_tail(tail)
            finally:
                context.open_tails.pop(tail, None)
    except Exception as exc:  # graphql-core 3.2 runs no middleware on a subscription's source: the same rule here
        raise reported(exc, info.field_name) from exc


async def _identity_caught_up(context: SubscriberContext) -> dict[int, int]:
    """The log's end (partition -> next offset), once the identity read model shows everything before it."""
    app = context.app
    ends = await app.log.end_positions()
    up_to = [LogPosition(app.log.topic, partition, end - 1) for partition, end in ends.items() if end > 0]
    try:
        await app.progress.wait_for(["identity"], up_to, app.read_your_writes_timeout_s)
    except ProjectionLagging:
        raise Unavailable(
            "who may read what is not up to date yet (the identity projection lags): subscribe again shortly"
        ) from None
    return ends


AFTER = "an event's cursor, from an earlier subscription: go on right after that event (overrides fromNow)"


class EventSubscriptions(graphene.ObjectType):
    events = graphene.Field(
        EventRecord,
        required=True,
        types=graphene.List(graphene.NonNull(graphene.String), description="event types, e.g. registry.version_linked"),
        stream_prefix=graphene.String(description="e.g. registered_model: or artifact:acme/nature/"),
        entity=graphene.String(description="runs and artifacts of this entity's projects"),
        registered_model=graphene.String(description="links, aliases, card and tags of this registered model"),
        from_now=graphene.Boolean(default_value=True, description="false: replay the whole log first, then go on live"),
        after=graphene.String(description=AFTER),
        description="Events as they reach the log (before the read models show them), filtered by type and scope.",
    )
    version_linked = graphene.Field(
        EventRecord,
        required=True,
        registered_model=graphene.String(required=True),
        after=graphene.String(description=AFTER),
        description="A version was linked to the registered model.",
    )
    alias_moved = graphene.Field(
        EventRecord,
        required=True,
        registered_model=graphene.String(required=True),
        alias=graphene.String(description="only this alias (e.g. production)"),
        after=graphene.String(description=AFTER),
        description=(
            "An alias of the registered model was set on a version (moving it there) or removed (by removeAlias, or "
            "by unlinking the version that held it)."
        ),
    )

    @staticmethod
    def subscribe_events(
        root: Any,
        info: graphene.ResolveInfo,
        from_now: bool = True,
        types: list[str] | None = None,
        stream_prefix: str | None = None,
        entity: str | None = None,
        registered_model: str | None = None,
        after: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        return _live_events(
            info, lambda: EventFilter.of(types, stream_prefix, entity, registered_model), from_now, after
        )

    @staticmethod
    def subscribe_version_linked(
        root: Any, info: graphene.ResolveInfo, registered_model: str, after: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return _live_events(
            info, lambda: EventFilter.of([VersionLinked.type], registered_model=registered_model), True, after
        )

    @staticmethod
    def subscribe_alias_moved(
        root: Any, info: graphene.ResolveInfo, registered_model: str, alias: str | None = None, after: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        only_alias = None if alias is None else (lambda envelope: envelope.payload.alias == alias)
        return _live_events(
            info,
            lambda: EventFilter.of([AliasAdded.type, AliasRemoved.type], registered_model=registered_model),
            True,
            after,
            only_alias,
        )
