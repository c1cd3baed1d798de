"""Following the log as it grows, for live subscribers (GraphQL subscriptions) that keep no position.

A tail reads the log itself, not the read models: an event reaches a subscriber as soon as it is durable,
whether or not the projections have applied it yet. Each tail is its own group-less reader (a Kafka
consumer assigned every partition, or a LISTEN connection on the Postgres log), so a subscriber that
reads slowly only holds back its own reader: the others, the projector and the API go on. Tails commit
nothing; when the subscriber goes away, its reader is closed. What a subscriber keeps instead is a resume
point, handed out with every event: a new tail started from it continues right after that event.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import NamedTuple
from uuid import uuid4

from modelreg.errors import InvalidInput, Unavailable, quoted
from modelreg.events.codec import UndecodableEvent, decode
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, LogPosition, LogRecord

log = logging.getLogger(__name__)

# Each tail holds a broker connection (Kafka) or a database connection (the Postgres log, where
# Postgres allows 100 connections by default and the API's pool needs its share).
MAX_OPEN_TAILS = 50
MAX_TAILS_PER_OWNER = 10
# Tails reading the log's past at once (a replay decodes every record, on the API's event loop): one viewer key's
# ten replays of a 30,000-event log held /healthz at 267 ms p50. Live tails, at the log's end, are not counted.
MAX_CATCHING_UP = 2


class TailedEvent(NamedTuple):
    position: LogPosition
    envelope: Envelope
    resume_point: str  # opaque: a tail started from it continues right after this event


# A partition's number or an offset in a resume point: at most an int64's digits, never signed.
_COUNT = re.compile(r"[0-9]{1,19}")


LOG_KINDS = ("kafka", "postgres", "memory")  # EventLog.kind, as a cursor names it


def encode_resume_point(kind: str, topic: str, next_offsets: Mapping[int, int]) -> str:
    offsets = ",".join(f"{partition}={offset}" for partition, offset in sorted(next_offsets.items()))
    return base64.urlsafe_b64encode(f"t:{topic}\x1f{offsets}\x1fk:{kind}".encode()).decode()


def decode_resume_point(resume_point: str, kind: str, topic: str, ends: Mapping[int, int]) -> dict[int, int]:
    """The next offset per partition; refused when it is not a point of this log (malformed, another topic, another
    kind of log, or ahead of the log: another installation)."""
    try:
        text = base64.urlsafe_b64decode(resume_point.encode()).decode()
        named, offsets, *said = text.removeprefix("t:").split("\x1f")
        if not text.startswith("t:") or named != topic or len(said) > 1 or (said and said[0][2:] not in LOG_KINDS):
            raise ValueError(named)
        starts = dict(_partition_offset(item) for item in offsets.split(",") if item)
    except ValueError:
        raise InvalidInput(
            f"{quoted(resume_point)} is not a cursor of this log's topic {topic}: pass the `cursor` of an event a "
            "subscription sent, as it was sent"
        ) from None
    # A cursor made before cursors said their log's kind names its partitions: the PostgreSQL log's one alone, of a
    # Kafka topic of several, is a cursor of the log before `migrate-log` (a Kafka tail names every partition).
    from_kind = said[0].removeprefix("k:") if said else ("postgres" if set(starts) == {0} and len(ends) > 1 else kind)
    if from_kind != kind:
        moved = " this registry had before it moved to Kafka (`modelreg migrate-log`)" if kind == "kafka" else ""
        raise InvalidInput(
            f"{quoted(resume_point)} is a cursor of the {from_kind} event log{moved}, and this registry's log is "
            f"{kind}: its offsets are no places in it. Subscribe again without `after` (fromNow, or from the "
            "beginning telling events apart by their id)"
        )
    if any(p not in ends or o > ends[p] for p, o in starts.items()):
        raise InvalidInput(f"{quoted(resume_point)} is ahead of this log: it comes from another installation")
    return {p: starts.get(p, 0) for p in ends}


def _partition_offset(item: str) -> tuple[int, int]:
    """`<partition>=<next offset>`, both counted from 0 (a negative offset is no point of any log)."""
    partition, equals, offset = item.partition("=")
    if not (equals and _COUNT.fullmatch(partition) and _COUNT.fullmatch(offset)):
        raise ValueError(item)
    return int(partition), int(offset)


class LogTails:
    """The tails one API process holds open, refused beyond `max_open` so subscribers cannot exhaust
    the broker's or the database's connections, and beyond `max_per_owner` for one owner (a principal), so
    that one key, a viewer's say, cannot take every place and lock the others out of live events."""

    def __init__(
        self,
        max_open: int = MAX_OPEN_TAILS,
        batch_size: int = 500,
        wait_s: float = 1.0,
        max_per_owner: int = MAX_TAILS_PER_OWNER,
    ) -> None:
        self.max_open = max_open
        self.max_per_owner = max_per_owner
        self.batch_size = batch_size
        self.wait_s = wait_s
        self._starting = 0
        self._reading = 0
        self._of_owner: dict[str, int] = {}
        self._catching_up = asyncio.Semaphore(MAX_CATCHING_UP)

    @property
    def reading(self) -> int:
        """Tails positioned on the log and reading it (what a subscriber waits for before it acts)."""
        return self._reading

    async def follow(
        self,
        event_log: EventLog,
        *,
        from_now: bool = True,
        resume_point: str | None = None,
        keep: Callable[[Envelope, LogPosition], bool] | None = None,
        owner: str | None = None,
        from_positions: Mapping[int, int] | None = None,
    ) -> AsyncGenerator[TailedEvent, None]:
        """The events `keep` accepts (all by default), appended from now on, or from the beginning of the
        log (`from_now=False`), or from `from_positions` (the next offset of each partition, as the log's
        `end_positions` gave them earlier; overrides `from_now`), or right after the event a `resume_point`
        came with (overrides both); in log order per partition. Records that do not decode (a foreign producer,
        a schema this build cannot read) are skipped: the projector dead-letters them, a live view just has
        nothing to show."""
        if self._starting + self._reading >= self.max_open:
            raise Unavailable(f"this API process already serves {self.max_open} event subscriptions: try again later")
        if owner is not None and self._of_owner.get(owner, 0) >= self.max_per_owner:
            raise Unavailable(
                f"{owner} already holds {self.max_per_owner} event subscriptions on this API process: complete one "
                "first (one subscription can take several event types and scopes)"
            )
        if owner is not None:
            self._of_owner[owner] = self._of_owner.get(owner, 0) + 1
        try:
            # Closed with this one, not when the garbage collector gets to it: it holds a reader of the log.
            following = self._follow(event_log, from_now, resume_point, keep, from_positions)
            async with aclosing(following) as tailed_events:
                async for tailed in tailed_events:
                    yield tailed
        finally:
            if owner is not None:
                self._of_owner[owner] -= 1
                if not self._of_owner[owner]:
                    del self._of_owner[owner]

    @staticmethod
    def _kept(
        records: list[LogRecord],
        keep: Callable[[Envelope, LogPosition], bool] | None,
        next_offsets: dict[int, int],
        kind: str,
    ) -> list[TailedEvent]:
        kept = []
        for record in records:
            position = record.position
            next_offsets[position.partition] = position.offset + 1
            if record.value is None:
                continue
            try:
                envelope = decode(record.value)
            except UndecodableEvent as exc:
                log.debug("tail skips %s: %s", position, exc)
                continue
            if keep is None or keep(envelope, position):
                kept.append(TailedEvent(position, envelope, encode_resume_point(kind, position.topic, next_offsets)))
        return kept

    async def _follow(
        self,
        event_log: EventLog,
        from_now: bool,
        resume_point: str | None,
        keep: Callable[[Envelope, LogPosition], bool] | None,
        from_positions: Mapping[int, int] | None = None,
    ) -> AsyncGenerator[TailedEvent, None]:
        self._starting += 1
        try:
            ends = await event_log.end_positions()
            if resume_point is not None:
                starts = decode_resume_point(resume_point, event_log.kind, event_log.topic, ends)
            elif from_positions is not None:
                # A partition the caller did not know of yet holds nothing it has seen: all of it is new.
                starts = {partition: min(from_positions.get(partition, 0), end) for partition, end in ends.items()}
            else:
                starts = dict(ends) if from_now else {partition: 0 for partition in ends}

            async def start_positions(partitions: list[int]) -> dict[int, int]:
                return {p: starts.get(p, 0) for p in partitions}

            # Given its partitions, the reader joins no consumer group: nothing to rebalance, nothing to commit.
            subscription = await event_log.subscribe(
                f"tail.{uuid4().hex[:12]}", start_positions, partitions=sorted(ends)
            )
        finally:
            self._starting -= 1
        self._reading += 1
        next_offsets = dict(starts)
        try:
            while True:
                records = await subscription.next_batch(self.wait_s, self.batch_size)
                if any(next_offsets.get(p, 0) < end for p, end in ends.items()):
                    # Behind where the log ended as it started: a replay, which takes its turn to decode and then
                    # lets the loop serve others. Not holding the turn while its subscriber takes the events: a
                    # client that stops reading would keep it.
                    async with self._catching_up:
                        kept = self._kept(records, keep, next_offsets, event_log.kind)
                        await asyncio.sleep(0)  # others' turn, while the replays past the limit wait for one
                else:
                    kept = self._kept(records, keep, next_offsets, event_log.kind)
                for tailed in kept:
                    yield tailed
        finally:
            self._reading -= 1
            await subscription.close()
