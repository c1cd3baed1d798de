"""The envelope: what every event carries besides its payload (DESIGN.md, invariant 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal, get_args
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny
from uuid_utils.compat import uuid7


class Event(BaseModel):
    """Base of every payload: a past-tense fact with a type tag and a schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    # Fields the log keeps but the API never serves (the audit log, live events): a key's hash, say.
    private_fields: ClassVar[frozenset[str]] = frozenset()

    def public_dump(self) -> dict:
        """The payload's fields, without its private ones."""
        return self.model_dump(exclude=set(self.private_fields))

    def audit_dump(self) -> dict:
        """What the audit log keeps of it: its public fields (an event carrying data rather than an action's facts
        keeps what says what was done: MetricsLogged)."""
        return self.public_dump()


ActorKind = Literal["user", "service", "automation"]
ACTOR_KINDS: tuple[str, ...] = get_args(ActorKind)


class Actor(BaseModel):
    """Who caused an event: a person, a service account, or an automation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActorKind
    id: str = Field(min_length=1, max_length=200)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


class Envelope(BaseModel):
    """An immutable event as it is stored on the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    type: str
    version: int
    stream: str = Field(min_length=1)
    # When the server received the command: the time audit, filters and history go by. (Events appended
    # before this rule may carry an offline client's claim here.) A naive time would be read in the
    # replaying host's zone.
    occurred_at: AwareDatetime
    actor: Actor
    correlation_id: UUID
    causation_id: UUID | None = None
    payload: SerializeAsAny[Event]
    # When an offline run's client says the command happened (its claim, bounded by the command path:
    # services/commands/offline_claims.py). Absent on the wire when None, so online events match older schemas.
    recorded_offline_at: AwareDatetime | None = None

    @classmethod
    def new(
        cls,
        payload: Event,
        *,
        stream: str,
        actor: Actor,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        occurred_at: datetime | None = None,
        recorded_offline_at: datetime | None = None,
        event_id: UUID | None = None,
    ) -> Envelope:
        """Wrap a payload in a fresh envelope; the id is minted here, when the command is accepted (or by the
        command path, for a command sent with a client's id: services/commands/command_identity.py), and the
        time is now unless given (replays of a history in tests and benchmarks give theirs)."""
        event_id = event_id or uuid7()
        return cls(
            id=event_id,
            type=payload.type,
            version=payload.version,
            stream=stream,
            occurred_at=occurred_at or datetime.now(UTC),
            actor=actor,
            correlation_id=correlation_id or event_id,
            causation_id=causation_id,
            payload=payload,
            recorded_offline_at=recorded_offline_at,
        )
