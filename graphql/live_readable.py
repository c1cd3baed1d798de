"""What a live subscriber may read, kept current while its socket is open.

The visibility set is computed from the caller when the socket connects; the events that change it (an
entity or model made private or public, a grant to or from the caller's principal) pass through every
subscription's filter, and those appended after that moment update it, so that an entity made private
stops reaching outsiders at once, without a query per event.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from modelreg.events.envelope import Envelope
from modelreg.events.identity import RoleGranted, RoleRevoked, ScopeMadePrivate, ScopeMadePublic
from modelreg.projections.readable import Readable
from modelreg.services.commands.access import Caller


class LiveReadable:
    def __init__(self, caller: Caller, since: datetime | None = None) -> None:
        self.caller = caller
        self.since = since or datetime.now(UTC)  # what `caller` already reflects
        self.readable: Readable = caller.readable()

    def sees(self, envelope: Envelope) -> bool:
        if envelope.occurred_at > self.since:
            self._apply(envelope)
        return self.readable.event(envelope)

    def _apply(self, envelope: Envelope) -> None:
        payload, caller = envelope.payload, self.caller
        if isinstance(payload, ScopeMadePrivate):
            caller = replace(caller, private=caller.private | {payload.scope})
        elif isinstance(payload, ScopeMadePublic):
            caller = replace(caller, private=caller.private - {payload.scope})
        elif isinstance(payload, RoleGranted) and payload.principal == caller.actor:
            caller = replace(caller, grants={**caller.grants, payload.scope: payload.role})
        elif isinstance(payload, RoleRevoked) and payload.principal == caller.actor:
            caller = replace(caller, grants={k: v for k, v in caller.grants.items() if k != payload.scope})
        else:
            return
        self.caller = caller
        self.readable = caller.readable()
