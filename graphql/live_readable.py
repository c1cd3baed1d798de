"""What a live subscriber may read, kept current while its socket is open.

The visibility set is computed from the caller when a subscription starts, once the identity read model has
caught up with the log's end (`reflected`: the next offset of each partition it shows); the events that change
it (an entity or model made private or public, a grant to or from the caller's principal) pass through every
subscription's filter, and those at or past `reflected` update it, so that an entity made private stops
reaching outsiders at once, without a query per event. By position, not by time: an event received before the
subscription started may be appended after the read model was read (it was made private while the
subscription started), and must still apply; one the read model shows, replayed, must not apply again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from modelreg.events.envelope import Envelope
from modelreg.events.identity import RoleGranted, RoleRevoked, ScopeMadePrivate, ScopeMadePublic
from modelreg.events.log import LogPosition
from modelreg.projections.readable import Readable
from modelreg.services.commands.access import Caller


class LiveReadable:
    def __init__(self, caller: Caller, reflected: Mapping[int, int]) -> None:
        self.caller = caller
        self.reflected = dict(reflected)  # partition -> the first offset `caller` does not reflect
        self.readable: Readable = caller.readable()

    def sees(self, envelope: Envelope, position: LogPosition) -> bool:
        if position.offset >= self.reflected.get(position.partition, 0):
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
