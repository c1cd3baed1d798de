"""A job's output as its agent sends it: stdout and stderr in the order the job printed them, in whole lines, every
half second or 64 KiB, a bounded record of each stream, and bounded memory when the server is slower than the job.

One stream after the other, each flushed on its own, gave a traceback apart from the progress lines printed before
it: a job printing out, err, out, err came back as all of its stdout, then all of its stderr.

While the API does not take what is sent (restarting), the job runs on: what it prints is read and held, the newest
`held_while_away` bytes of it, and sent once the API answers again. A failed send killed the job, and the report of
its failure failed the same way: it showed RUNNING for as long as its agent lived.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID, uuid4

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

log = logging.getLogger(__name__)

OUTPUT_FLUSH_S = 0.5
OUTPUT_FLUSH_BYTES = 64 * 1024
# Printed and not sent yet (read, or being sent), past which the job's pipes are not read: the job then waits on its
# prints, as it would on a slow terminal, rather than the agent holding its output in memory.
UNSENT_BYTES_HELD = 4 * OUTPUT_FLUSH_BYTES
# Held while the API does not answer, when the job is not made to wait (an outage is not a slow terminal: a job
# stopped on its prints for minutes loses its GPU time): past it the oldest goes, and a note says how much.
HELD_WHILE_AWAY_BYTES = 4 * 1024 * 1024
SEND_AGAIN_WAIT_MAX_S = 5.0  # between tries of a piece the API did not take: doubling from 0.5 s up to this
# After the job's pipes end, how long what it printed last is tried: then its end is reported without it.
SENT_AFTER_THE_END_FOR_S = 300.0

# (stream, text, the piece's id): a piece tried again goes with the same id, which the server keeps it once by.
Send = Callable[[str, str, UUID], Awaitable[object]]


class JobOutput:
    def __init__(
        self,
        send: Send,
        kept_bytes: int,
        *,
        sent_again_after: Callable[[BaseException], bool] = lambda exc: False,
        held_while_away: int = HELD_WHILE_AWAY_BYTES,
        after_the_end_s: float = SENT_AFTER_THE_END_FOR_S,
        name: str = "the job",
    ) -> None:
        """`sent_again_after`: whether a failed send may be tried again (the API not answering), with the same id."""
        self._send = send
        self._kept_bytes = kept_bytes
        self._sent_again_after = sent_again_after
        self._held_while_away = held_while_away
        self._after_the_end_s = after_the_end_s
        self._name = name
        self._segments: list[tuple[str, bytearray]] = []  # as they arrived; neighbours of one stream joined
        self._unsent = 0  # read and not taken to be sent
        self._sending = 0  # taken, and not sent yet
        self._ended: set[str] = set()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        # A character split between two reads is decoded whole with the second.
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._sent: dict[str, int] = {}
        self._streams: set[str] = set()
        self._ended_at: float | None = None  # when the last pipe ended
        self._away = False  # the last send failed, to be tried again: the pipes are read on, whatever is held
        self._dropped: dict[str, int] = {}  # bytes of each stream dropped while the API was away, not said yet
        self._line_ended: dict[str, bool] = {}  # whether the last of each stream taken to be sent ended a line
        self._not_sent = 0  # characters given up on after the job's end: once one is, the rest are too

    async def capture(self, pipes: Mapping[str, asyncio.StreamReader | None]) -> None:
        """Read every pipe to its end (`{"STDOUT": ..., "STDERR": ...}`) and send all it printed, in order."""
        self._streams = {stream for stream, pipe in pipes.items() if pipe}
        readers = [asyncio.create_task(self._read(stream, pipe)) for stream, pipe in pipes.items() if pipe]
        try:
            await self._send_until_ended(self._streams)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        if self._not_sent:
            log.error(
                "%s: the last %d characters of its output were not sent: the API did not take them for %g s after "
                "it ended",
                self._name,
                self._not_sent,
                self._after_the_end_s,
            )

    async def _read(self, stream: str, pipe: asyncio.StreamReader) -> None:
        # Bytes, not lines: a line longer than asyncio's line limit (a progress bar without newlines) must not fail
        # the job.
        while True:
            while self._unsent + self._sending >= UNSENT_BYTES_HELD and not self._away:
                self._room.clear()
                await self._room.wait()
            chunk = await pipe.read(OUTPUT_FLUSH_BYTES)
            if not chunk:
                self._ended.add(stream)
                if self._ended >= self._streams:
                    self._ended_at = asyncio.get_running_loop().time()
                self._arrived.set()
                return
            if self._segments and self._segments[-1][0] == stream:
                self._segments[-1][1].extend(chunk)
            else:
                self._segments.append((stream, bytearray(chunk)))
            self._unsent += len(chunk)
            if (excess := self._unsent + self._sending - self._held_while_away) > 0:
                self._drop_oldest(excess)  # of what is not taken yet: a piece being sent is sent whole
            if self._unsent >= OUTPUT_FLUSH_BYTES:
                self._arrived.set()

    async def _send_until_ended(self, streams: set[str]) -> None:
        loop = asyncio.get_running_loop()
        flushed_at = loop.time()
        while True:
            self._arrived.clear()  # before looking: what a reader adds from here on sets it again
            ended = self._ended >= streams
            if not ended and self._unsent < OUTPUT_FLUSH_BYTES:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), max(0.0, OUTPUT_FLUSH_S - (loop.time() - flushed_at)))
                ended = self._ended >= streams
            if ended or self._unsent >= OUTPUT_FLUSH_BYTES or loop.time() - flushed_at >= OUTPUT_FLUSH_S:
                ready = self._take_ready()
                self._sending = sum(len(data) for _, data in ready)
                for stream, data in ready:
                    for at in range(0, len(data), OUTPUT_FLUSH_BYTES):  # a request no larger than before
                        piece = data[at : at + OUTPUT_FLUSH_BYTES]
                        await self._send_text(stream, piece, final=False)
                        self._sending -= len(piece)
                flushed_at = loop.time()
                self._room.set()
            if ended and not self._segments:
                for stream in sorted(self._decoders):
                    await self._send_text(stream, b"", final=True)
                return

    def _take_ready(self) -> list[tuple[str, bytes]]:
        """What may go now, in order: all of it, but for the trailing part line of a stream still open (an unbuffered
        print arrives word by word), kept for its end unless 64 KiB in all came without one: kept then, part lines
        of two streams held the loop sending nothing and waiting for nothing."""
        last_of = {stream: at for at, (stream, _) in enumerate(self._segments)}
        crowded = self._unsent >= OUTPUT_FLUSH_BYTES
        ready: list[tuple[str, bytes]] = []
        kept: list[tuple[str, bytearray]] = []
        for at, (stream, data) in enumerate(self._segments):
            still_open = last_of[stream] == at and stream not in self._ended and not crowded
            end = _after_last_line_end(data) if still_open else len(data)
            if end:
                ready.append((stream, bytes(data[:end])))
            if end < len(data):
                kept.append((stream, data[end:]))
        self._segments = kept
        self._unsent = sum(len(data) for _, data in kept)
        # What was dropped came before all that is here, and after all that was taken before.
        notes = [(stream, self._dropped_note(stream, count).encode()) for stream, count in self._dropped.items()]
        self._dropped = {}
        for stream, piece in notes + ready:
            self._line_ended[stream] = piece.endswith((b"\n", b"\r"))
        return notes + ready

    def _drop_oldest(self, excess: int) -> None:
        """Past what is held while the API is away: the oldest goes, to the end of a line where that ends."""
        while excess > 0 and self._segments:
            stream, data = self._segments[0]
            cut = min(excess, len(data))
            if cut < len(data) and (line_end := data.find(b"\n", cut)) != -1:
                cut = line_end + 1
            del data[:cut]
            if not data:
                self._segments.pop(0)
            self._dropped[stream] = self._dropped.get(stream, 0) + cut
            self._unsent -= cut
            excess -= cut

    def _dropped_note(self, stream: str, count: int) -> str:
        return (
            ("" if self._line_ended.get(stream, True) else "\n")
            + f"[modelreg agent: {count:,} bytes of {stream.lower()} left out here: the API did not answer for a "
            f"while, and the agent holds at most {self._held_while_away:,} bytes of a job's output meanwhile]\n"
        )

    async def _send_text(self, stream: str, data: bytes, *, final: bool) -> None:
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        # A process may print U+0000, which the registry cannot store: shown as U+FFFD, like bad UTF-8.
        text = decoder.decode(data, final=final).replace("\x00", "\ufffd")
        sent = self._sent.get(stream, 0)
        if not text or sent >= self._kept_bytes:
            return
        sent = self._sent[stream] = sent + len(text.encode())
        if sent >= self._kept_bytes:
            text += (
                f"\n[modelreg agent: {stream.lower()} passed {self._kept_bytes:,} bytes; the rest of it is not kept]\n"
            )
        await self._delivered(stream, text)

    async def _delivered(self, stream: str, text: str) -> None:
        """Sent, under one id however often it is tried: a piece the API did not take is tried again while the job
        runs, the job running on, and for `after_the_end_s` after it ended; then the rest is given up on."""
        if self._not_sent:
            self._not_sent += len(text)
            return
        retrying = AsyncRetrying(
            retry=retry_if_exception(self._sent_again_after),
            wait=wait_exponential(multiplier=0.5, max=SEND_AGAIN_WAIT_MAX_S),
            stop=self._long_past_the_end,
            before_sleep=self._went_away,
            reraise=True,
        )
        try:
            await retrying(self._send, stream, text, uuid4())
        except Exception as exc:
            if not self._sent_again_after(exc):
                raise
            self._not_sent += len(text)
            return
        if self._away:
            self._away = False
            log.info("%s: its output is sent again", self._name)

    def _long_past_the_end(self, retry_state: RetryCallState) -> bool:
        ended_at = self._ended_at
        return ended_at is not None and asyncio.get_running_loop().time() - ended_at >= self._after_the_end_s

    def _went_away(self, retry_state: RetryCallState) -> None:
        if self._away:
            return
        self._away = True
        self._room.set()  # its readers read on
        failed = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            "%s: its output could not be sent (%s): it runs on, the newest %s bytes of what it prints are held and "
            "sent when the API answers again",
            self._name,
            failed or "no answer",
            f"{self._held_while_away:,}",
        )


def _after_last_line_end(buffer: bytearray) -> int:
    """Where the last complete line of `buffer` ends (by "\\n", or "\\r" as progress bars end theirs); 0: none."""
    return max(buffer.rfind(b"\n"), buffer.rfind(b"\r")) + 1
