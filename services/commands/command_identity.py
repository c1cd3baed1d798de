"""What makes a command sent under a client's `commandId` the same command when it comes again.

A client resends a command it got no answer for (a timeout, a cut connection) under the same id, and the copy
must change nothing and be answered as the first was. The id alone does not say that the copy is that command:
a client reusing an id for another command (another run's finish, other aliases) was answered with the first
command's success, and its own command was never carried out. So a command's identity is its sender, its id and
a digest of what it asks (`Identified.identity_input`: every field but the id and a claimed time), and its
events keep it, in their ids: each is a UUIDv7 of the time it was accepted (RFC 9562) whose random bits are its
place among the command's events (`rand_a`, 12 bits: they stay in the order they were decided) and 62 bits of
the identity (`rand_b`). The audit log keeps each event's id beside its causation id (the command's id), so a
copy sent again finds the first command's events through the causation index and compares, with no field in
the envelope (whose JSON Schemas forbid unknown ones) nor column or index in the audit log (its writes bound a
rebuild).

Events of commands accepted before identities were kept have random bits there: one such command is taken for
the copy's, as it was then (`Recorded.unkeyed`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import orjson
from pydantic import BaseModel
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict
from modelreg.events.envelope import Actor
from modelreg.projections.audit_queries import CausedEvent

if TYPE_CHECKING:
    from modelreg.services.commands.decisions import CommandContext

_IDENTITY_BITS = (1 << 62) - 1
_PLACES = 1 << 12  # rand_a: a command has at most a hundred or so events (a link and its aliases)
_TIME = ((1 << 48) - 1) << 80  # unix_ts_ms
_VERSION_7 = 7 << 76
_VARIANT = 0b10 << 62


class IdentifiedCommand(Protocol):
    """services/commands/commands.py's Identified."""

    @property
    def command_id(self) -> UUID | None: ...

    def identity_input(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CommandIdentity:
    bits: int  # 62 bits of the digest of the sender, the command's id and its input

    @classmethod
    def of(cls, command: IdentifiedCommand, actor: Actor) -> CommandIdentity | None:
        """None for a command sent without an id. orjson.JSONEncodeError for an input no event could hold (an
        integer over 64 bits, nesting over 254 levels): the caller refuses it as it would refuse the event."""
        if command.command_id is None:
            return None
        digest = hashlib.sha256(f"{actor}\x00{type(command).__name__}\x00".encode() + command.command_id.bytes)
        digest.update(orjson.dumps(command.identity_input(), default=_fields_of, option=orjson.OPT_SORT_KEYS))
        return cls(int.from_bytes(digest.digest()[:8], "big") & _IDENTITY_BITS)

    def event_id(self, place: int) -> UUID:
        """The id of the command's event at `place` (0: its first): a fresh UUIDv7 keeping this identity. A place
        past what 12 bits hold (no command has that many events) gets a plain UUIDv7."""
        if not 0 <= place < _PLACES:
            return uuid7()
        return UUID(int=(uuid7().int & _TIME) | _VERSION_7 | (place << 64) | _VARIANT | self.bits)

    def keeps(self, event_id: UUID) -> bool:
        return event_id.version == 7 and event_id.int & _IDENTITY_BITS == self.bits


@dataclass(frozen=True)
class Recorded:
    """The events one sender's commands appended under one command id, oldest first."""

    events: Sequence[CausedEvent]

    def of(self, identity: CommandIdentity) -> CausedEvent | None:
        """The first event of the command with this identity among them."""
        return next((event for event in self.events if identity.keeps(event.event_id)), None)

    def unkeyed(self) -> bool:
        """Whether they were appended before commands kept their identity: no first event (place 0) and no two
        events sharing their identity bits, as random ids almost never do."""
        places = [(event.event_id.int >> 64) & (_PLACES - 1) for event in self.events]
        bits = [event.event_id.int & _IDENTITY_BITS for event in self.events]
        return 0 not in places and len(set(bits)) == len(bits)

    def described(self) -> str:
        first = self.events[0]
        more = f" and {len(self.events) - 1} more event(s)" if len(self.events) > 1 else ""
        return f"accepted as {first.type} on {first.stream}{more}"


async def already_accepted(
    cmd: IdentifiedCommand, ctx: CommandContext, subject: str | None = None
) -> CausedEvent | None:
    """The first event of this command, accepted before under its id (a retry after a lost answer, a second sync),
    which must append nothing twice and be answered as it was: None when there is none. `subject`: the payload field
    of what the command made (an id the server chose), read with it. Another command accepted under the id is
    refused: answered as a copy, it was told the other's success and was never carried out."""
    if cmd.command_id is None:
        return None
    recorded = Recorded(await ctx.reads.audit.caused_by(cmd.command_id, ctx.actor, subject))
    if not recorded.events:
        return None
    identity = ctx.identity or CommandIdentity.of(cmd, ctx.actor)
    assert identity is not None  # the command has an id
    first = recorded.of(identity)
    if first is not None:
        return first
    if recorded.unkeyed():
        return recorded.events[0]  # accepted before commands kept their identity: taken for this one, as then
    raise Conflict(
        f"commandId {cmd.command_id} was already used for a different command ({recorded.described()}): use a new "
        "commandId for a new command"
    )


def _fields_of(value: Any) -> Any:
    """What orjson does not write itself: a nested model (a manifest entry, a metric series) as its fields."""
    if isinstance(value, BaseModel):
        return value.__dict__
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not part of a command's input")
