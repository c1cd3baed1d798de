"""The event log interface: append events, read them back from a stored position.

Three implementations of the same Protocols, so callers never know which one they talk to: Kafka, the
reference (`kafka_log.py`); an append-only PostgreSQL table, the one-machine default of `modelreg server`
(`postgres_log.py`); and an in-memory log for tests (`memory_log.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

from modelreg.errors import Unavailable
from modelreg.events.envelope import Envelope
from modelreg.events.written import RecentlyWritten


# NamedTuples rather than dataclasses: a replay creates one of each per event, and tuples are built in C.
class LogPosition(NamedTuple):
    """Where a record sits in the log: its partition and its offset within it."""

    topic: str
    partition: int
    offset: int


class LogRecord(NamedTuple):
    """A record as read: raw bytes, because decoding (and failing to) is the reader's business."""

    position: LogPosition
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class EventLogNotAnswering(Unavailable):
    """Unavailable as the event log raises it: its message advises the caller (GraphQL's answer), `what_happened`
    says it for an operator (a background job's log line, where advice to send a command again means nothing)."""

    def __init__(self, message: str, what_happened: str, *, still_held: Awaitable[object] | None = None) -> None:
        """`still_held`: an append's records the log still holds and will write, whole, once the broker answers; done
        once they are written or failed. Until then a copy of the command must not be decided again: it would be
        appended behind them and both written (services/commands/application.py)."""
        super().__init__(message)
        self.what_happened = what_happened
        self.still_held = still_held


class TopicMissing(LookupError):
    """The log's topic does not exist, and this process may not create it: it only reads the log, or waits for the
    process that takes the first commands to create it."""


# Called when partitions are assigned to a reader: returns the next offset to read for each, from the
# reader's own store (a projection's position table), never from the broker's committed offsets alone.
StartPositions = Callable[[list[int]], Awaitable[dict[int, int]]]


class Subscription(Protocol):
    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]: ...

    def seek(self, partition: int, offset: int) -> None: ...

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        """Tell the broker how far we applied; advisory (lag monitoring), the reader's own store is the truth."""
        ...

    async def close(self) -> None: ...


class EventLog(Protocol):
    topic: str
    # "kafka", "postgres" or "memory": offsets of one kind of log are no positions in another (events/tail.py's
    # cursors say theirs, so that one kept across `modelreg migrate-log` is refused, not resumed at a wrong place).
    kind: str
    # When set, append remembers what it wrote, so that this process reads it back without decoding it.
    written: RecentlyWritten | None

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        """Append durably (all replicas acknowledged) and return where each event landed, in order."""
        ...

    async def end_positions(self) -> dict[int, int]:
        """The next offset to be written in each partition."""
        ...

    async def subscribe(
        self, reader: str, start_positions: StartPositions, partitions: Sequence[int] | None = None
    ) -> Subscription:
        """Read as `reader`: sharing the partitions with the reader's other instances (a consumer group),
        or, when `partitions` is given, exactly those."""
        ...

    async def dead_letter(self, record: LogRecord, reader: str, reason: str) -> None:
        """Park an undecodable record on the dead-letter topic, with the reason and where it came from."""
        ...

    async def dead_lettered(self) -> list[tuple[LogRecord, str]]:
        """What was dead-lettered so far, each with its reason."""
        ...

    async def append_raw(self, records: Sequence[LogRecord]) -> list[LogPosition]:
        """Append records as they are, bypassing the codec (their positions are ignored): what a foreign
        producer would write, or events copied from another log with their bytes unchanged."""
        ...
