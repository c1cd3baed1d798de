"""What a command handler gets (the reads, the caller) and what it gives back (the events it decided)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any, Protocol
from uuid import UUID

from modelreg.errors import NotFound, PermissionDenied, quoted
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.services.commands.access import Caller, model_scopes
from modelreg.services.commands.command_identity import CommandIdentity
from modelreg.services.commands.read_models import ReadModels


class StoredBlobs(Protocol):
    async def sizes(self, digests: Collection[str]) -> dict[str, int]:
        """The size of each of `digests` that the store holds (absent: not stored)."""
        ...

    async def held_by(self, digests: Collection[str], holder: str) -> set[str]:
        """Which of `digests` `holder` proved to have, by sending their bytes (services/infra/blob_holders.py)."""
        ...


@dataclass(frozen=True)
class Decision:
    """The events a command becomes (maybe none), the id of what it created or found, and what its caller should
    know though nothing was refused (an automation watching a model that does not exist yet)."""

    events: list[Envelope] = field(default_factory=list)
    subject_id: Any = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandContext:
    reads: ReadModels
    caller: Caller
    correlation_id: UUID | None = None
    # What caused it: the event an automation reacts to, or the id of a command a client recorded offline.
    causation_id: UUID | None = None
    # When an offline run's client recorded the command (a bounded claim), kept beside the server's time.
    recorded_offline_at: datetime | None = None
    # The blob store a manifest's files must be in; None: this process logs no artifact versions.
    blobs: StoredBlobs | None = None
    # What a command sent with a client's id is (services/commands/command_identity.py), kept in its events' ids.
    identity: CommandIdentity | None = None
    # The place of the next event decided, among the command's.
    places: Iterator[int] = field(default_factory=count, repr=False, compare=False)

    @property
    def actor(self) -> Actor:
        return self.caller.actor

    async def require_readable_version(self, version: dict[str, Any], missing: str) -> None:
        """A version of a private entity is used or linked only by who may read it (viewer on its entity, or
        a reader of a registered model it is linked into). To anyone else it does not exist (`missing`), as
        for its reads: a refusal naming its entity would tell what the id leads to."""
        readable = self.caller.readable()
        if readable.entity(version["entity"]):
            return
        linked = await self.reads.registry.models_linking(version["id"])
        if not any(readable.model(model) for model in linked):
            raise NotFound(missing)

    async def require_admin_for_protected(self, registered_model: str, aliases: tuple[str, ...], doing: str) -> None:
        """Protected aliases (`production`, say) are moved by the model's admins only."""
        if not aliases or self.caller.may("admin", model_scopes(registered_model)):
            return
        protected = await self.reads.registry.protected_aliases(registered_model)
        for alias in aliases:
            if alias in protected and self.caller.job_id is not None:
                # No grant lifts a job's key above member: "ask for a grant" would send its author in circles.
                raise PermissionDenied(
                    f"{doing} protected alias {quoted(alias)} needs an admin of model:{registered_model}, and this key "
                    f"was issued for an attempt of Launch job {self.caller.job_id}: a job's key is a member at "
                    "most, whatever its agent's role. Move the alias by hand, or with an automation of an admin "
                    "that fires when the job's version is linked"
                )
            if alias in protected:
                self.caller.require("admin", model_scopes(registered_model), f"{doing} protected alias {quoted(alias)}")

    def event(self, payload: Event, stream: str) -> Envelope:
        return Envelope.new(
            payload,
            stream=stream,
            actor=self.actor,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            recorded_offline_at=self.recorded_offline_at,
            event_id=self.identity.event_id(next(self.places)) if self.identity is not None else None,
        )


# A command handler: the command (of the type it is registered for) and its context in, the decision out.
Handler = Callable[[Any, CommandContext], Awaitable[Decision]]
