"""The command path: validate -> decide -> append -> wait for the read models -> answer (read-your-writes)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import orjson

from modelreg.errors import Conflict, InvalidInput, NotYetVisible
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, EventLogNotAnswering, LogPosition
from modelreg.projections.progress import ProjectionLagging
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services.commands.access import Caller
from modelreg.services.commands.cancelled_jobs import require_what_a_cancelled_job_may_do
from modelreg.services.commands.command_identity import CommandIdentity
from modelreg.services.commands.commands import Command, Identified, Recordable
from modelreg.services.commands.decisions import CommandContext, Decision, StoredBlobs
from modelreg.services.commands.handlers import HANDLERS
from modelreg.services.commands.in_flight import Claim, InFlight, InFlightInPostgres, OneCopyAtATime, claim_key
from modelreg.services.commands.offline_claims import bounded_claim
from modelreg.services.commands.read_models import ProjectionsShowing, ReadModels

# The read models a handler asks whether a command was accepted before: the audit log (by the command's id)
# and the registry (a version's client-chosen id, or a manifest equal to the newest version's).
DEDUPING_PROJECTIONS = ("audit", "registry")


@dataclass(frozen=True)
class Accepted:
    subject_id: Any
    events: list[Envelope]
    positions: list[LogPosition]
    warnings: tuple[str, ...] = ()  # the handler's (Decision.warnings), for the caller's answer


class Application:
    """Read-your-writes waits for the projections that show the appended events, not for the others."""

    def __init__(
        self,
        log: EventLog,
        reads: RegistryQueries,
        progress: ProjectionsShowing,
        *,
        projections: dict[str, set[str]],
        read_your_writes_timeout_s: float = 5.0,
        blobs: StoredBlobs | None = None,
        read_models: ReadModels | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.log = log
        self.blobs = blobs  # where a manifest's files must be; None: artifact versions are not logged here
        self.reads = reads  # the registry's queries, for the resolvers and runners this application serves
        # What commands are checked against; in the server, the read models in the pool of `reads`.
        self.read_models = read_models or ReadModels.in_postgres(reads.pool)
        self.copies = OneCopyAtATime(in_flight or InFlightInPostgres(reads.pool))
        self.progress = progress
        self.projections = projections  # name -> the event types it handles ("*": all)
        self.read_your_writes_timeout_s = read_your_writes_timeout_s

    async def close(self) -> None:
        """Let go of the claims of ended commands now, before the pool they are let go of through closes (within a
        few seconds: a process stopping while PostgreSQL is away must still stop)."""
        await self.copies.let_go(timeout_s=3.0)

    def _showing(self, events: Sequence[Envelope]) -> list[str]:
        types = {e.type for e in events}
        return [name for name, handled in self.projections.items() if "*" in handled or types & handled]

    async def execute(
        self,
        command: Command,
        caller: Caller,
        correlation_id: UUID | None = None,
        *,
        causation_id: UUID | None = None,
        wait_for_read_models: bool = True,
    ) -> Accepted:
        reads = self.read_models
        caller.require(command.needs, await command.scopes_in(reads, caller.readable()), command.describe())
        await require_what_a_cancelled_job_may_do(command, caller, reads)
        if correlation_id is None and caller.job_id is not None:
            # What a launched job does is correlated by the job: the audit log tells it from its agent's other
            # work, and an automation whose job did it does not fire on it again (a loop).
            correlation_id = caller.job_id
        timeout_s = self.read_your_writes_timeout_s
        claims = []
        if (key := command.idempotency_key()) is not None:
            claims.append(Claim(claim_key(key, caller.actor), f"{command.describe()} (id {key})"))
        turns = await command.turns_of(reads)
        claims += [Claim(turn, command.describe(), turn=True) for turn in turns]
        claims += [
            Claim(taken, f"{command.describe()} (a name it takes)", turn=True) for taken in command.names_taken()
        ]
        async with self.copies.held(claims, timeout_s) as holding:
            try:
                return await self._execute(
                    command, caller, correlation_id, causation_id, wait_for_read_models, in_turn=bool(turns)
                )
            except EventLogNotAnswering as exc:
                if exc.still_held is not None:
                    # Answered UNAVAILABLE, its events still to be written by the log when its broker answers: a copy
                    # decided meanwhile would find none of them and be appended behind them (both written).
                    holding.until(exc.still_held)
                raise

    async def _execute(
        self,
        command: Command,
        caller: Caller,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        wait_for_read_models: bool,
        in_turn: bool = False,
    ) -> Accepted:
        """The command past its rights check (and, if it has a key or a turn, holding them)."""
        reads = self.read_models
        # Whatever has a key is checked against the read models for an earlier copy of itself (or, a version's
        # client-chosen id, for another version under it).
        if (key := command.idempotency_key()) is not None:
            await self._caught_up_with_the_log(key)
        handler = HANDLERS[type(command)]
        claim = await bounded_claim(command, reads.registry) if isinstance(command, Recordable) else None
        identity = None
        if isinstance(command, Identified):
            causation_id = command.command_id or causation_id
            try:
                identity = CommandIdentity.of(command, caller.actor)
            except orjson.JSONEncodeError as exc:
                raise _unstorable(command, exc) from None
        context = CommandContext(
            reads, caller, correlation_id, causation_id, claim, blobs=self.blobs, identity=identity
        )
        decision = await handler(command, context)
        if not decision.events:
            return Accepted(decision.subject_id, [], [], decision.warnings)
        if correlation_id is None:
            decision = _correlated(decision)
        try:
            positions = await self.log.append(decision.events)
        except orjson.JSONEncodeError as exc:  # raised before anything is written: nothing was appended
            raise _unstorable(command, exc) from None
        if not wait_for_read_models:
            if in_turn:  # the next in turn is decided on read models that show this one
                with suppress(ProjectionLagging):
                    await self.progress.wait_for(
                        self._showing(decision.events), positions, self.read_your_writes_timeout_s
                    )
            return Accepted(decision.subject_id, decision.events, positions, decision.warnings)
        try:
            await self.progress.wait_for(self._showing(decision.events), positions, self.read_your_writes_timeout_s)
        except ProjectionLagging as exc:
            ids = ", ".join(str(e.id) for e in decision.events)
            raise NotYetVisible(
                f"accepted as event(s) {ids}, but the read models are behind ({exc}); query again shortly"
            ) from exc
        parked = await self.progress.parked_among({e.stream for e in decision.events})
        if parked:
            projection, stream, error = parked[0]
            raise NotYetVisible(
                f"accepted, but projection {projection} has parked {stream} after an error ({error}): it will "
                "show once the stream is released; see /healthz"
            )
        return Accepted(decision.subject_id, decision.events, positions, decision.warnings)

    async def log_end(self) -> list[LogPosition]:
        """The last event of each partition on the log now."""
        ends = await self.log.end_positions()
        return [LogPosition(self.log.topic, partition, end - 1) for partition, end in ends.items() if end > 0]

    async def _caught_up_with_the_log(self, key: UUID) -> None:
        """Before a command sent with a client id is checked against the read models for an earlier copy of
        itself: wait until they show everything on the log now. A client retries after a lost answer (an API
        killed mid-request, a cut connection); its first copy may be on the log but not yet applied, and
        judging by lagging read models would apply the command twice. A version's id is also read off the log
        by live events' subscribers before the registry shows it: sent again under another name, it must find
        the first version."""
        deduping = [name for name in DEDUPING_PROJECTIONS if name in self.projections]
        if not deduping:
            return
        try:
            await self.progress.wait_for(deduping, await self.log_end(), self.read_your_writes_timeout_s)
        except ProjectionLagging as exc:
            # Nothing of this copy was appended: NOT_YET_VISIBLE would tell the client it was (a metric sender
            # dropped its batch on it).
            raise Conflict(
                f"command {key} may have been accepted already, and the read models are behind ({exc}), so this "
                "copy was not carried out (nothing was written): send it again, with the same id, shortly",
                retriable=True,
            ) from exc


def _unstorable(command: Command, exc: orjson.JSONEncodeError) -> InvalidInput:
    return InvalidInput(
        f"a value of this {command.describe()} cannot be stored as JSON ({exc}): integers must fit in "
        "64 bits and objects nest at most 254 levels deep"
    )


def _correlated(decision: Decision) -> Decision:
    """A command's events share one correlation: its first event's id (a link and the aliases it sets)."""
    first, *rest = decision.events
    return replace(decision, events=[first, *(e.model_copy(update={"correlation_id": first.id}) for e in rest)])
