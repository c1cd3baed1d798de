"""The events this process appended lately, by their bytes: read back from the log, they need no decoding.

An event appended here was validated when its command built it; the record that comes back from the log
with the very same bytes is that event. Handing back the object already built saves parsing and
validating it again (in `modelreg server`, each command's event is read back by the process that wrote
it). Anything else read from the log (other processes, other versions, foreign producers) is decoded and
validated in full. Bytes that may hold text PostgreSQL cannot store are never remembered: the decoder's
replacement rules apply to them as to everyone's.
"""

from __future__ import annotations

from modelreg.events.envelope import Envelope
from modelreg.events.storable_text import may_hold_unstorable


class RecentlyWritten:
    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._events: dict[bytes, Envelope] = {}

    def remember(self, value: bytes, event: Envelope) -> None:
        if may_hold_unstorable(value):
            return
        if len(self._events) >= self.capacity:
            del self._events[next(iter(self._events))]  # the oldest: dicts keep insertion order
        self._events[value] = event

    def recall(self, value: bytes | None) -> Envelope | None:
        """The event written with exactly these bytes, once: a record is read back by one reader per process."""
        return self._events.pop(value, None) if value is not None else None
