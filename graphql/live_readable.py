"""What a live subscriber may read, kept current while its socket is open.

The visibility set is computed from the caller when a subscription starts, once the identity read model has
caught up with the log's end (`reflected`: the next offset of each partition it shows); the events that change
it (an entity or model made private or public, a grant to or from the caller's principal) pass through every
subscription's filter, and those at or past `reflected` update it, so that an entity made private stops
reaching outsiders at once, without a query per event. By position, not by time: an event received before the
subscription started may be appended after the read model was read (it was made private while the
subscription started), and must still apply; one the read model shows, replayed, must not apply again.

A replay (the events before `reflected`) can outlast what the caller could read when it subscribed: a grant
revoked, a team made private meanwhile is on the log only after everything being replayed. So the subscription
looks the caller up again as it replays (`seen_now`), and a replayed event reaches it only if both the caller as
it subscribed (with the changes read since) and the caller as now looked up may read it: never more than at
subscription time, and what was taken away since applies within a look-up.
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
        self._now: Readable | None = None  # the caller as last looked up during the replay

    def replays(self, position: LogPosition) -> bool:
        """Whether the event at `position` is one of the replay's: logged before the caller was looked up."""
        return position.offset < self.reflected.get(position.partition, 0)

    def seen_now(self, caller: Caller) -> None:
        """The caller looked up again: it judges the rest of the replay too."""
        self._now = caller.readable()

    def sees(self, envelope: Envelope, position: LogPosition) -> bool:
        if not self.replays(position):
            self._apply(envelope)
        elif self._now is not None and not self._now.event(envelope):
            return False
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
